"""Failures of the storage under opscm (a full disk, a read-only file system, a database that
went away) told apart from bugs: the client gets a clear 503 it may retry, not a 500."""

from __future__ import annotations

import errno
import sqlite3

from sqlalchemy.exc import DBAPIError, OperationalError

from opscm.protocol.errors import ApiError

_NO_SPACE = ("disk is full", "no space left", "could not extend file", "disk full")
_READ_ONLY = ("readonly database", "read-only file system", "attempt to write a readonly")
_STORAGE_ERRNOS = {errno.ENOSPC: "the disk is full", errno.EROFS: "the file system is read-only", errno.EDQUOT: "a disk quota is exceeded"}


def storage_failure(error: BaseException) -> ApiError | None:
    """The answer for ``error`` when the storage failed, else None (a bug: 500)."""
    reason = _reason(error)
    if reason is None:
        return None
    return ApiError("ServiceUnavailable", f"opscm cannot store data now ({reason}); try again later.", 503)


def _is_driver_operational(error: BaseException) -> bool:
    """A DBAPI driver's own OperationalError (plain SQL on the hot path raises those)."""
    if isinstance(error, sqlite3.OperationalError):
        return True
    kind = type(error)
    return kind.__module__.startswith("psycopg") and any(k.__name__ == "OperationalError" for k in kind.__mro__)


def _reason(error: BaseException) -> str | None:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in _STORAGE_ERRNOS:
            return _STORAGE_ERRNOS[current.errno]
        if isinstance(current, (OperationalError, DBAPIError)) or _is_driver_operational(current):
            orig = getattr(current, "orig", current)
            text = str(orig).lower() if orig is not None else ""
            if any(marker in text for marker in _NO_SPACE):
                return "the disk is full"
            if any(marker in text for marker in _READ_ONLY):
                return "the data dir is read-only"
            if isinstance(current, OperationalError) or _is_driver_operational(current) or current.connection_invalidated:
                return "the database is not reachable"
        current = current.__cause__ or current.__context__
    return None
