"""A real goiardi (Debian package ``goiardi``, a Chef server in Go, 0.11.x) for tests.

    goiardi -A -I 127.0.0.1 -P <port> -H 127.0.0.1 --conf-root=<dir> -D <dir>/data.bin -i <dir>/index.bin -F 1

Authentication is on, it listens on loopback only, and it has no organizations: use the bare
paths (``/clients``, ``/nodes``) and ``organization=None``.

What survives ``stop()`` + ``start()``: everything. With a data file (``-D``) and an index file
(``-i``) goiardi keeps its in-memory store on disk: it saves both on SIGTERM/SIGINT and, while
running, every ``-F`` seconds after a change (1 s here, so even ``stop(kill=True)`` loses at most
the last second). On start it loads them; the ``admin`` user, ``chef-validator`` and
``chef-webui`` are only created (and their ``*.pem`` written) when they are missing, so the same
``admin.pem`` keeps working, and registered clients, their keys and nodes are still there. The
port is kept too, so ``url`` does not change. (Without ``-D``/``-i`` goiardi would start empty
and write a new ``admin.pem`` every time.)

The ``goiardi`` session fixture fails when goiardi is missing and ``CI`` is set, else skips.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.requirements import require

ADMIN = "admin"


class Goiardi:
    def __init__(self, conf_root: Path, *, executable: str = "goiardi"):
        self.conf_root = conf_root
        self.executable = executable
        self.port: int | None = None
        self.process: subprocess.Popen | None = None
        self.log_path = conf_root / "goiardi.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def admin_name(self) -> str:
        return ADMIN

    @property
    def admin_key_path(self) -> Path:
        return self.conf_root / "admin.pem"

    def admin_key(self) -> bytes:
        return self.admin_key_path.read_bytes()

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, timeout: float = 20) -> None:
        """Start, on a free port the first time and on the same port after that; returns once
        goiardi answers HTTP."""
        if self.running:
            return
        first = self.port is None
        for _ in range(3 if first else 1):
            if first:
                self.port = _free_port()
            if self._launch(timeout):
                return
        raise RuntimeError(f"goiardi did not start on port {self.port}:\n{self.log()[-4000:]}")

    def stop(self, *, kill: bool = False, timeout: float = 10) -> None:
        """SIGTERM (goiardi saves its data, then exits) or, with ``kill``, SIGKILL."""
        if not self.running:
            return
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout)

    @contextlib.contextmanager
    def stopped(self, *, kill: bool = False) -> Iterator[None]:
        """Stopped inside the block, started again (same data, port and admin key) after it,
        even when the block fails: the session's other tests need it back."""
        self.stop(kill=kill)
        try:
            yield
        finally:
            self.start()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def _launch(self, timeout: float) -> bool:
        root = self.conf_root
        command = [
            self.executable,
            "-A",
            "-I", "127.0.0.1",
            "-P", str(self.port),
            "-H", "127.0.0.1",
            f"--conf-root={root}",
            "-D", str(root / "data.bin"),
            "-i", str(root / "index.bin"),
            "-F", "1",
            "--log-level=info",
        ]  # fmt: skip
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False  # e.g. the port was taken between choosing and binding it
            if _answers(self.url):
                return True
            time.sleep(0.05)
        self.stop(kill=True)
        return False


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _answers(url: str) -> bool:
    """Any HTTP answer counts: with authentication on, an unsigned request gets 401."""
    try:
        urllib.request.urlopen(url + "/nodes", timeout=1).close()
        return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def goiardi(tmp_path_factory) -> Iterator[Goiardi]:
    """One goiardi for the session. A test that stops it uses ``with goiardi.stopped():``."""
    require(shutil.which("goiardi"), "goiardi (Debian package goiardi)")
    server = Goiardi(tmp_path_factory.mktemp("goiardi"))
    server.start()
    yield server
    server.stop()
