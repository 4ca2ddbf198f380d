"""Access keys made with `opscm credentials`, as an operator would, also while the server runs."""

from __future__ import annotations

import configparser
import dataclasses
import os
import subprocess
import sys
from pathlib import Path


@dataclasses.dataclass(frozen=True)
class NewKey:
    profile: str
    access_key_id: str
    secret_access_key: str
    region: str | None
    stdout: str
    stderr: str

    @property
    def pair(self) -> tuple[str, str]:
        return self.access_key_id, self.secret_access_key


def credentials_command(data_dir: Path, command: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "opscm", "credentials", command, "--data-dir", str(data_dir), *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def add_key(data_dir: Path, *args: str) -> NewKey:
    """`opscm credentials add`; its stdout must be exactly one profile section."""
    done = credentials_command(data_dir, "add", *args)
    assert done.returncode == 0, done.stderr
    parser = configparser.ConfigParser()
    parser.read_string(done.stdout)
    (profile,) = parser.sections()
    section = parser[profile]
    return NewKey(
        profile,
        section["aws_access_key_id"],
        section["aws_secret_access_key"],
        section.get("region"),
        done.stdout,
        done.stderr,
    )


def add_account_key(data_dir: Path) -> tuple[str, str]:
    """A key of a new account (another tenant)."""
    return add_key(data_dir, "--account", "new", "--name", "other-account").pair
