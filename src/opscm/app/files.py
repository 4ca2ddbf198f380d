"""Files that hold secrets (master.key, credentials): owner-only (0600) from their first byte, and
never reached through a symbolic link someone planted in the data dir."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

# O_EXCL: a file or a link already there is an error, never opened (O_EXCL also refuses a
# dangling link rather than creating its target); O_NOFOLLOW says so for reading too.
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW


def write_private_file(path: Path, content: bytes) -> None:
    """Create *path* (mode 0600) holding *content*; FileExistsError if anything is there."""
    fd = os.open(path, _CREATE, 0o600)
    with os.fdopen(fd, "wb") as handle:
        os.fchmod(fd, 0o600)  # whatever the umask
        handle.write(content)


def replace_private_file(path: Path, content: bytes) -> None:
    """As write_private_file, after removing what was there (a link itself, never its target)."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    write_private_file(path, content)


def read_private_file(path: Path) -> bytes:
    """The content of the regular file *path*, not followed if it is a link."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise OSError(errno.ELOOP, "a symbolic link: opscm does not follow links to secrets", str(path)) from None
        raise
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "is not a regular file", str(path))
        return handle.read()
