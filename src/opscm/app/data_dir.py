"""The data dir must be a directory opscm can write to; say so in one line when it is not."""

from __future__ import annotations

import errno
import os
from pathlib import Path


class DataDirError(Exception):
    """The data dir cannot be used; the message says what to fix."""


def prepare_data_dir(path: Path) -> None:
    """Create *path* (0700) if needed and prove a file can be written in it."""
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as error:
        raise DataDirError(f"cannot create the data dir {path} ({_reason(error)}): choose another with --data-dir") from None
    if not path.is_dir():
        raise DataDirError(f"the data dir {path} is not a directory: choose another with --data-dir")
    probe = path / f".opscm-write-test-{os.getpid()}"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            os.write(fd, b"opscm")
        finally:
            os.close(fd)
            os.unlink(probe)
    except OSError as error:
        hint = "mount it read-write" if error.errno == errno.EROFS else "give opscm's user write access to it"
        raise DataDirError(
            f"cannot write to the data dir {path} ({_reason(error)}): {hint}, or choose another with --data-dir"
        ) from None


def _reason(error: OSError) -> str:
    return (error.strerror or str(error)).lower()
