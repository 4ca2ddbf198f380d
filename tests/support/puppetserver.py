"""A real puppetserver (Debian 7.9.5) for tests, run from its jar with a private configuration.

Nothing of the system installation is used but the read-only program files: every directory
(conf.d, services.d, puppet.conf, ssldir, cadir, codedir, vardir, logdir...) lives in a temp
dir, and the server listens on 127.0.0.1 on a free port. See FACTS.md, "Running a real
puppetserver in tests".

Two modes:

* **CA mode** (``certificate-authority-service``): puppetserver is the CA. Its certname is
  ``localhost`` with alt names ``DNS:localhost, IP:127.0.0.1``, so agents may reach it by
  either. Its own certificate carries ``pp_cli_auth`` and is the admin client certificate
  of the CA API (auth.conf lets ``pp_cli_auth: "true"`` call certificate_status and clean).
* **External-CA mode** (``certificate-authority-disabled-service``): started from a server
  certificate, key, CA certificate and CRL made elsewhere (opscm's CA). The CRL file is the
  caller's own and is watched: replacing it takes effect about a second later.

Start-up takes 30-100 s, so starts run in the background and fixtures only wait:

* ``puppetserver_ca`` (session): CA mode. Its start is kicked off at the end of collection when
  any selected test uses the fixture, so it overlaps with the tests that run before.
* ``puppetserver_external`` (session): a factory. ``puppetserver_external.begin(files)``
  starts an external-CA server in the background and returns at once;
  ``puppetserver_external(files)`` waits for it (starting it if needed). Call ``begin`` from a
  session-scoped autouse fixture of the test module: pytest sets those up before any other
  fixture of the module's first test, so the start overlaps the wait for ``puppetserver_ca``
  (see tests/integration/test_puppetserver_peers.py). One external server per session:
  asking again with other files is an error; replace the CRL file of the running one instead.

When java or puppetserver is missing, the fixtures skip with the reason, or fail when the
environment variable ``CI`` is set. A server that does not start fails the test with its logs.
Every process is killed at the end of the session (and with the test process, by
``PR_SET_PDEATHSIG``, should that one be killed).
"""

from __future__ import annotations

import ctypes
import dataclasses
import http.client
import json
import os
import random
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

__all__ = [
    "ExternalCaFiles",
    "ExternalFactory",
    "Puppetserver",
    "PuppetserverError",
    "free_port",
    "missing_puppetserver",
    "prepare_ca_mode",
    "prepare_external_mode",
    "selected_tests_use",
    "unavailable",
]

JAR = Path("/usr/share/puppetserver/puppetserver.jar")
INSTALL_DIR = JAR.parent
DEBIAN_CONF = Path("/etc/puppet/puppetserver")
JRUBY_LIB = Path("/usr/share/jruby/lib")
HEAP = "512m"
# C1 only: a third less CPU to start (measured: ~50 s instead of ~80 s of CPU time), and a test
# server compiles few catalogs. OPSCM_PUPPETSERVER_JVM_EXTRA replaces it.
JVM_EXTRA: list[str] = os.environ.get("OPSCM_PUPPETSERVER_JVM_EXTRA", "-XX:TieredStopAtLevel=1").split()
# Generous: 30-50 s on a quiet machine, ~100 s on a busy one; other engineers share the cores.
START_TIMEOUT = float(os.environ.get("OPSCM_PUPPETSERVER_START_TIMEOUT", "300"))
CERTNAME = "localhost"
ALT_NAMES = ("DNS:localhost", "IP:127.0.0.1")

CA_SERVICE = "puppetlabs.services.ca.certificate-authority-service/certificate-authority-service"
CA_DISABLED_SERVICE = (
    "puppetlabs.services.ca.certificate-authority-disabled-service/certificate-authority-disabled-service"
)
WATCH_SERVICE = "puppetlabs.trapperkeeper.services.watcher.filesystem-watch-service/filesystem-watch-service"

# What a catalog apply leaves behind: a file in the agent's own directory (the agent names it
# with the FACTER_opscm_agent_root environment variable, an external fact) holding what the
# server's compiler saw of it, and a notify that shows in the agent's output.
SITE_MANIFEST = """\
node default {
  $root = $facts['opscm_agent_root']
  if $root =~ /^\\/[^\\n]+$/ {
    file { "${root}/applied.txt":
      ensure  => file,
      content => "certname=${trusted['certname']}\\nauthenticated=${trusted['authenticated']}\\n",
    }
  }
  notify { "opscm catalog for ${trusted['certname']}": }
}
"""


class PuppetserverError(RuntimeError):
    """puppetserver did not start, or stopped; the message holds its logs."""


@dataclasses.dataclass(frozen=True)
class ExternalCaFiles:
    """What an external-CA puppetserver is started from (PEM files, as opscm produces them).

    ``crl`` is used in place and watched: write a new CRL there (atomically) to revoke."""

    certname: str
    server_cert: Path
    server_key: Path
    ca_cert: Path
    crl: Path

    def resolved(self) -> ExternalCaFiles:
        return dataclasses.replace(
            self,
            server_cert=Path(self.server_cert).resolve(),
            server_key=Path(self.server_key).resolve(),
            ca_cert=Path(self.ca_cert).resolve(),
            crl=Path(self.crl).resolve(),
        )


def missing_puppetserver() -> str | None:
    """Why a puppetserver cannot be run here, or None when it can."""
    if not shutil.which("java"):
        return "java is not installed (Debian package openjdk-17-jre-headless)"
    if not JAR.is_file():
        return f"puppetserver is not installed ({JAR} is missing; Debian package puppetserver)"
    if not (DEBIAN_CONF / "conf.d" / "auth.conf").is_file():
        return f"puppetserver's configuration is missing ({DEBIAN_CONF}/conf.d/auth.conf)"
    return None


def free_port() -> int:
    """A port free now, below the kernel's ephemeral range: puppetserver binds it only when
    its web server starts, up to a minute later, and in the meantime no outgoing connection
    or ``bind(0)`` of another test can be handed the same port."""
    try:
        ephemeral_low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        ephemeral_low = 32768
    low, high = 20000, min(ephemeral_low, 32768)
    for _ in range(100):
        port = random.randrange(low, high) if high > low else 0
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return s.getsockname()[1]
    raise PuppetserverError("no free port found for puppetserver")


# ---- configuration ------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Layout:
    """The private directory tree of one puppetserver."""

    root: Path

    confd = property(lambda self: self.root / "conf.d")
    servicesd = property(lambda self: self.root / "services.d")
    confdir = property(lambda self: self.root / "puppet")  # puppet.conf (server-conf-dir)
    codedir = property(lambda self: self.root / "code")
    vardir = property(lambda self: self.root / "var")
    rundir = property(lambda self: self.root / "run")
    logdir = property(lambda self: self.root / "log")
    ssldir = property(lambda self: self.root / "ssl")
    cadir = property(lambda self: self.root / "ca")
    gemhome = property(lambda self: self.root / "jruby-gems")
    tmpdir = property(lambda self: self.root / "tmp")
    log_file = property(lambda self: self.logdir / "puppetserver.log")
    console_file = property(lambda self: self.logdir / "console.log")


def _hocon(value) -> str:
    return json.dumps(value)  # JSON is valid HOCON; paths get quoted and escaped


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _write_common(layout: Layout, port: int, ca_service: str, webserver_ssl: dict[str, str]) -> None:
    for directory in (layout.vardir, layout.rundir, layout.logdir, layout.gemhome, layout.tmpdir):
        directory.mkdir(parents=True, exist_ok=True)
    layout.servicesd.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(DEBIAN_CONF / "services.d" / "bootstrap.cfg", layout.servicesd / "bootstrap.cfg")
    _write(layout.servicesd / "ca.cfg", f"{ca_service}\n{WATCH_SERVICE}\n")

    layout.confd.mkdir(parents=True, exist_ok=True)
    # Debian's rules (certificate_status and clean need pp_cli_auth, catalogs need $1, ...).
    for name in ("auth.conf", "metrics.conf"):
        shutil.copyfile(DEBIAN_CONF / "conf.d" / name, layout.confd / name)
    webserver = {"client-auth": "want", "ssl-host": "127.0.0.1", "ssl-port": port, **webserver_ssl}
    _write(layout.confd / "webserver.conf", "webserver: " + json.dumps(webserver, indent=4) + "\n")
    _write(
        layout.confd / "puppetserver.conf",
        f"""jruby-puppet: {{
    ruby-load-path: ["/usr/lib/puppetserver/ruby/vendor_ruby"]
    gem-home: {_hocon(str(layout.gemhome))}
    gem-path: [{_hocon(str(layout.gemhome))}, "/usr/lib/puppetserver/vendored-jruby-gems"]
    server-conf-dir: {_hocon(str(layout.confdir))}
    server-code-dir: {_hocon(str(layout.codedir))}
    server-var-dir: {_hocon(str(layout.vardir))}
    server-run-dir: {_hocon(str(layout.rundir))}
    server-log-dir: {_hocon(str(layout.logdir))}
    max-active-instances: 1
}}
""",
    )
    _write(
        layout.confd / "web-routes.conf",
        """web-router-service: {
    "puppetlabs.services.ca.certificate-authority-service/certificate-authority-service": "/puppet-ca"
    "puppetlabs.services.master.master-service/master-service": "/puppet"
    "puppetlabs.services.legacy-routes.legacy-routes-service/legacy-routes-service": ""
    "puppetlabs.services.puppet-admin.puppet-admin-service/puppet-admin-service": "/puppet-admin-api"
    "puppetlabs.trapperkeeper.services.status.status-service/status-service": "/status"
    "puppetlabs.trapperkeeper.services.metrics.metrics-service/metrics-webservice": "/metrics"
}
""",
    )
    logback = layout.root / "logback.xml"
    _write(layout.confd / "global.conf", f"global: {{ logging-config: {_hocon(str(logback))} }}\n")
    _write(
        logback,
        f"""<configuration>
    <appender name="FILE" class="ch.qos.logback.core.FileAppender">
        <file>{layout.log_file}</file>
        <encoder><pattern>%d{{HH:mm:ss.SSS}} %-5p [%c{{2}}] %m%n</pattern></encoder>
    </appender>
    <logger name="org.eclipse.jetty" level="WARN"/>
    <root level="info"><appender-ref ref="FILE"/></root>
</configuration>
""",
    )
    _write(layout.confd / "ca.conf", "certificate-authority: {}\n")
    _write(layout.codedir / "environments" / "production" / "manifests" / "site.pp", SITE_MANIFEST)


def _puppet_conf(layout: Layout, port: int, certname: str, extra: dict[str, str]) -> None:
    settings = {
        "certname": certname,
        "server": certname,
        "serverport": str(port),
        "ca_server": certname,
        "ca_port": str(port),
        "ssldir": str(layout.ssldir),
        "cadir": str(layout.cadir),
        "vardir": str(layout.vardir),
        "codedir": str(layout.codedir),
        "logdir": str(layout.logdir),
        "rundir": str(layout.rundir),
        "autosign": "false",
        "reports": "none",
        **extra,
    }
    _write(layout.confdir / "puppet.conf", "[main]\n" + "".join(f"{k} = {v}\n" for k, v in settings.items()))


def prepare_ca_mode(root: Path, port: int) -> Layout:
    """Configuration of a puppetserver that is its own CA (certname localhost)."""
    layout = Layout(root)
    # No ssl-* in webserver.conf: puppetserver then serves its own hostcert, key, CA and CRL.
    _write_common(layout, port, CA_SERVICE, {})
    _puppet_conf(layout, port, CERTNAME, {"dns_alt_names": ",".join(ALT_NAMES)})
    return layout


def prepare_external_mode(root: Path, port: int, files: ExternalCaFiles) -> Layout:
    """Configuration of a puppetserver serving certificates of an external CA."""
    layout = Layout(root)
    files = files.resolved()
    for path in (files.server_cert, files.server_key, files.ca_cert, files.crl):
        if not path.is_file():
            raise FileNotFoundError(f"external CA file missing: {path}")
    ssl_settings = {
        "ssl-cert": str(files.server_cert),
        "ssl-key": str(files.server_key),
        "ssl-ca-cert": str(files.ca_cert),
        # The caller's own file: jetty watches it (filesystem-watch service) and reloads it.
        "ssl-crl-path": str(files.crl),
    }
    _write_common(layout, port, CA_DISABLED_SERVICE, ssl_settings)
    _puppet_conf(layout, port, files.certname, {})
    return layout


# ---- the process --------------------------------------------------------------------------

_PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True)


def _die_with_parent() -> None:
    # Runs in the child between fork and exec: a killed test run leaves no 1.2 GB JVM behind.
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


class Puppetserver:
    """A puppetserver process and where to find its certificates."""

    def __init__(
        self,
        layout: Layout,
        port: int,
        mode: str,
        certname: str,
        external: ExternalCaFiles | None = None,
        heap: str = HEAP,
    ):
        self.layout = layout
        self.heap = heap
        self.port = port
        self.mode = mode
        self.certname = certname
        self.external = external
        self.process: subprocess.Popen | None = None
        self.started_at = 0.0
        # For the record (printed in pytest's summary): start time and CPU, peak memory.
        self.start_seconds: float | None = None
        self.start_cpu_seconds: float | None = None
        self.peak_rss_mib: float | None = None

    # -- where things are --
    @property
    def url(self) -> str:
        """Base URL, by the certname (which the server certificate holds)."""
        return f"https://{self.certname}:{self.port}"

    @property
    def ca_cert_path(self) -> Path:
        return self.external.ca_cert if self.external else self.layout.cadir / "ca_crt.pem"

    @property
    def crl_path(self) -> Path:
        """The CRL the CA keeps (CA mode) / the watched CRL file (external mode)."""
        return self.external.crl if self.external else self.layout.cadir / "ca_crl.pem"

    @property
    def client_cert_path(self) -> Path:
        """CA mode: the server's own certificate, which carries pp_cli_auth (CA admin)."""
        return self.external.server_cert if self.external else self.layout.ssldir / "certs" / f"{self.certname}.pem"

    @property
    def client_key_path(self) -> Path:
        return self.external.server_key if self.external else self.layout.ssldir / "private_keys" / f"{self.certname}.pem"

    def __repr__(self) -> str:
        return f"Puppetserver({self.mode}, {self.url}, root={self.layout.root})"

    # -- life cycle --
    def launch(self) -> None:
        """Start the JVM (returns at once); call from the thread that lives longest (pdeathsig)."""
        command = [
            shutil.which("java") or "java",
            f"-Xms{self.heap}",
            f"-Xmx{self.heap}",
            f"-Djruby.lib={JRUBY_LIB}",
            f"-Djava.io.tmpdir={self.layout.tmpdir}",
            *JVM_EXTRA,
            "-XX:+CrashOnOutOfMemoryError",
            f"-XX:ErrorFile={self.layout.logdir}/hs_err_%p.log",
            "-jar",
            str(JAR),
            "--config",
            str(self.layout.confd),
            "--bootstrap-config",
            str(self.layout.servicesd),
        ]
        console = open(self.layout.console_file, "ab")
        self.started_at = time.monotonic()
        try:
            self.process = subprocess.Popen(
                command,
                cwd=INSTALL_DIR,
                stdin=subprocess.DEVNULL,
                stdout=console,
                stderr=subprocess.STDOUT,
                env={**os.environ, "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"},
                preexec_fn=_die_with_parent,
            )
        finally:
            console.close()

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        """Block until ``GET /status/v1/simple`` answers; raise PuppetserverError with the logs."""
        assert self.process is not None, "launch() first"
        deadline = self.started_at + timeout
        # Readiness only: the server's certificate may not even exist yet when polling starts.
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        status_url = f"https://127.0.0.1:{self.port}/status/v1/simple"
        while True:
            if self.process.poll() is not None:
                raise PuppetserverError(f"puppetserver exited with status {self.process.returncode}\n" + self.logs())
            try:
                with urllib.request.urlopen(status_url, context=context, timeout=5) as reply:
                    if reply.status == 200:
                        self.start_seconds = time.monotonic() - self.started_at
                        self.start_cpu_seconds = self.cpu_seconds()
                        return
            except (OSError, urllib.error.URLError, http.client.HTTPException):
                pass  # not listening yet, or TLS not ready
            if time.monotonic() > deadline:
                self.stop()
                raise PuppetserverError(f"puppetserver did not answer within {timeout:.0f} s\n" + self.logs())
            time.sleep(0.5)

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 30) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.peak_rss_mib = self._status_mib("VmHWM")
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)

    def rss_mib(self) -> float | None:
        """Resident memory of the JVM now."""
        return self._status_mib("VmRSS")

    def _status_mib(self, field: str) -> float | None:
        if not self.running():
            return None
        try:
            for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
        except OSError:
            return None
        return None

    def summary(self) -> str:
        if self.start_seconds is None:
            return f"puppetserver {self.mode}: did not become ready"
        return (
            f"puppetserver {self.mode}: ready in {self.start_seconds:.0f} s "
            f"({self.start_cpu_seconds or 0:.0f} s CPU), peak RSS {self.peak_rss_mib or 0:.0f} MiB"
        )

    def cpu_seconds(self) -> float | None:
        """CPU time the JVM has used (user + system), a load-independent measure of its start."""
        if not self.running():
            return None
        try:
            fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def logs(self, lines: int = 150) -> str:
        """The end of puppetserver's log and console output, for failure messages."""
        parts = []
        for path in (self.layout.log_file, self.layout.console_file):
            try:
                text = path.read_text(errors="replace").splitlines()[-lines:]
            except OSError:
                continue
            parts.append(f"--- {path} (last {len(text)} lines) ---\n" + "\n".join(text))
        return "\n".join(parts) or "(no log written)"

    def log_contains(self, text: str) -> bool:
        try:
            return text in self.layout.log_file.read_text(errors="replace")
        except OSError:
            return False


# ---- one start per mode per session, in the background ------------------------------------


class _Start:
    """One puppetserver starting in the background; ``result`` waits for it."""

    def __init__(self, server: Puppetserver):
        self.server = server
        self.error: BaseException | None = None
        self._done = threading.Event()
        server.launch()  # in the calling (main) thread: see _die_with_parent
        threading.Thread(target=self._wait, name=f"puppetserver-{server.mode}", daemon=True).start()

    def _wait(self) -> None:
        try:
            self.server.wait_ready()
        except BaseException as error:  # handed to the fixture that waits
            self.error = error
        finally:
            self._done.set()

    def result(self) -> Puppetserver:
        self._done.wait()
        if self.error is not None:
            raise self.error
        if not self.server.running():
            raise PuppetserverError("puppetserver stopped\n" + self.server.logs())
        return self.server


class _Starts:
    """The session's puppetservers: at most one per mode."""

    def __init__(self):
        self._root: Path | None = None
        self.ca: _Start | None = None
        self.external: _Start | None = None
        self.external_files: ExternalCaFiles | None = None

    def _dir(self, name: str) -> Path:
        if self._root is None:
            self._root = Path(tempfile.mkdtemp(prefix="opscm-puppetserver-"))
        return Path(tempfile.mkdtemp(prefix=f"{name}-", dir=self._root))

    def begin_ca(self) -> _Start:
        if self.ca is None:
            port = free_port()
            layout = prepare_ca_mode(self._dir("ca"), port)
            self.ca = _Start(Puppetserver(layout, port, "ca", CERTNAME))
        return self.ca

    def begin_external(self, files: ExternalCaFiles) -> _Start:
        files = files.resolved()
        if self.external is None:
            port = free_port()
            layout = prepare_external_mode(self._dir("external"), port, files)
            self.external_files = files
            self.external = _Start(Puppetserver(layout, port, "external", files.certname, external=files))
        elif files != self.external_files:
            raise PuppetserverError(
                "one external-CA puppetserver per test session: it is already running from "
                f"{self.external_files}; reuse it (replace its CRL file to revoke)"
            )
        return self.external

    def servers(self) -> list[Puppetserver]:
        return [start.server for start in (self.ca, self.external) if start is not None]

    def stop_all(self) -> None:
        for start in (self.ca, self.external):
            if start is not None:
                start.server.stop()
        if self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)


_STARTS = _Starts()


def unavailable() -> None:
    """Skip (or fail under CI) when puppetserver cannot run here."""
    reason = missing_puppetserver()
    if reason is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"puppetserver tests cannot run: {reason}", pytrace=False)
    pytest.skip(f"puppetserver tests need it: {reason}")


def _wait(start: _Start) -> Puppetserver:
    try:
        return start.result()
    except PuppetserverError as error:
        pytest.fail(str(error), pytrace=False)


class ExternalFactory:
    """``factory(files)`` -> a running external-CA puppetserver; ``factory.begin(files)`` starts
    it in the background and returns at once."""

    def begin(self, files: ExternalCaFiles) -> None:
        unavailable()
        _STARTS.begin_external(files)

    def __call__(self, files: ExternalCaFiles) -> Puppetserver:
        unavailable()
        try:
            start = _STARTS.begin_external(files)
        except PuppetserverError as error:
            pytest.fail(str(error), pytrace=False)
        return _wait(start)


# ---- pytest plugin (listed in tests/conftest.py pytest_plugins) ----------------------------


def selected_tests_use(session, fixture_name: str) -> bool:
    """True when a test selected for this run requests ``fixture_name`` (directly or not)."""
    return any(fixture_name in getattr(item, "fixturenames", ()) for item in session.items)


def pytest_collection_finish(session) -> None:
    # Start CA mode before the first test runs when a selected test will need it.
    if session.config.option.collectonly or missing_puppetserver() is not None:
        return
    if selected_tests_use(session, "puppetserver_ca"):
        _STARTS.begin_ca()


def pytest_sessionfinish(session, exitstatus) -> None:
    _STARTS.stop_all()


def pytest_terminal_summary(terminalreporter) -> None:
    for server in _STARTS.servers():
        terminalreporter.write_line(server.summary())


@pytest.fixture(scope="session")
def puppetserver_ca() -> Puppetserver:
    """puppetserver as the CA (certname localhost), running for the whole session."""
    unavailable()
    return _wait(_STARTS.begin_ca())


@pytest.fixture(scope="session")
def puppetserver_external() -> ExternalFactory:
    """Factory of the session's external-CA puppetserver (see the module's doc)."""
    unavailable()
    return ExternalFactory()

