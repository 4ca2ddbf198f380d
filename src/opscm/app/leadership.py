"""One leader per data store for the background work (job runner, scheduler, health checks).

Every worker process, and every replica on a shared PostgreSQL database, serves requests; only
the holder of the data store's leadership lock runs background work. The lock belongs to a
process, so the kernel (SQLite: ``flock`` on a file in the data dir) or the database
(PostgreSQL: a session-level advisory lock on a connection of its own) frees it when the
process dies, however it dies; the others try again every ``retry`` seconds and one takes over.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from sqlalchemy import Engine as SqlEngine
from sqlalchemy import text

log = logging.getLogger("opscm.leadership")

LOCK_FILE = "leader.lock"
# Any fixed number, the same for every replica: the key of the advisory lock.
ADVISORY_LOCK_KEY = 0x6F707363  # "opsc"
RETRY_SECONDS = 1.0


class LeadershipLock(Protocol):
    def try_acquire(self) -> bool:
        """Take the lock if it is free; True while this process holds it."""

    def still_held(self) -> bool:
        """False once the lock was lost (PostgreSQL: its connection broke)."""

    def release(self) -> None: ...


class FileLock:
    """SQLite: an exclusive ``flock`` on ``<data dir>/leader.lock``."""

    def __init__(self, data_dir: Path):
        self._path = Path(data_dir) / LOCK_FILE
        self._fd: int | None = None

    def try_acquire(self) -> bool:
        if self._fd is not None:
            return True
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def still_held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the last descriptor frees the lock
            self._fd = None


class AdvisoryLock:
    """PostgreSQL: ``pg_try_advisory_lock`` held by a connection kept out of the pool's reach."""

    def __init__(self, database: SqlEngine, key: int = ADVISORY_LOCK_KEY):
        self._database = database
        self._key = key
        self._connection = None

    def try_acquire(self) -> bool:
        if self._connection is not None:
            return True
        connection = self._database.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            held = bool(connection.scalar(text("SELECT pg_try_advisory_lock(:key)"), {"key": self._key}))
        except Exception:
            connection.close()
            raise
        if not held:
            connection.close()
            return False
        self._connection = connection
        return True

    def still_held(self) -> bool:
        if self._connection is None:
            return False
        try:
            self._connection.scalar(text("SELECT 1"))
            return True
        except Exception:  # noqa: BLE001 - the session, and with it the lock, is gone
            self._drop()
            return False

    def release(self) -> None:
        if self._connection is not None:
            try:
                self._connection.scalar(text("SELECT pg_advisory_unlock(:key)"), {"key": self._key})
            except Exception:  # noqa: BLE001 - closing the session frees it anyway
                pass
            self._drop()

    def _drop(self) -> None:
        try:
            self._connection.invalidate()  # never back to the pool: the session may hold the lock
            self._connection.close()
        finally:
            self._connection = None


def lock_for(database: SqlEngine, data_dir: Path | None) -> LeadershipLock:
    if database.dialect.name == "postgresql":
        return AdvisoryLock(database)
    if data_dir is None:
        raise ValueError("leadership on SQLite needs a data dir")
    return FileLock(data_dir)


class Election:
    """Tries for the lock every ``retry`` seconds; starts the background work when it is won
    and stops it if it is ever lost (a follower never runs it)."""

    def __init__(self, lock: LeadershipLock, lead: Callable[[], None], follow: Callable[[], None], retry: float = RETRY_SECONDS):
        self._lock = lock
        self._lead = lead
        self._follow = follow
        self._retry = retry
        self._stop = threading.Event()
        self._leading = False
        self._thread = threading.Thread(target=self._loop, name="opscm-leadership", daemon=True)

    @property
    def leading(self) -> bool:
        return self._leading

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        if self._leading:
            self._follow()
            self._leading = False
        self._lock.release()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._round()
            except Exception as error:  # noqa: BLE001 - the store may be away for a while: try again
                log.warning("leadership check failed: %s", error)
            self._stop.wait(self._retry)

    def _round(self) -> None:
        if self._leading:
            if not self._lock.still_held():
                log.warning("process %d lost the leadership: background work stopped", os.getpid())
                self._leading = False
                self._follow()
            return
        if self._lock.try_acquire() and not self._stop.is_set():
            self._leading = True
            log.info("process %d leads: job runner, scheduler and health checks started", os.getpid())
            self._lead()
