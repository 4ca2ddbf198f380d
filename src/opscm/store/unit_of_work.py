"""One transaction per use case: every repository shares its connection.

``SqlUnitOfWork`` runs on SQLAlchemy Core (plain SQL too, on the same DBAPI connection).
A *lean* unit of work runs only plain SQL on a raw pooled connection, for the association hot
path: a Core connection and its events cost ~120 µs a transaction, a raw one ~10 µs.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import Connection, Engine
from sqlalchemy.pool import StaticPool

from opscm.service.ports import WouldWait

from .database import BUSY_TIMEOUT_MS, is_shared_memory
from .wal_sync import WalSync
from .sql import (
    SqlAccessKeys,
    SqlAssociations,
    SqlBackups,
    SqlEvents,
    SqlJobs,
    SqlNodes,
    SqlServers,
    SqlTags,
)
from .sql.base import Sql, sql_of

_REPOSITORIES = {
    "servers": SqlServers,
    "associations": SqlAssociations,
    "jobs": SqlJobs,
    "nodes": SqlNodes,
    "access_keys": SqlAccessKeys,
    "events": SqlEvents,
    "backups": SqlBackups,
    "tags": SqlTags,
}


class _Repositories:
    """Repositories made when first used, all on this unit of work's transaction."""

    _core: Connection | None
    _sql: Sql

    def __getattr__(self, name: str):
        repository = _REPOSITORIES.get(name)
        if repository is None:
            raise AttributeError(name)
        made = repository(self._core, self._sql)
        setattr(self, name, made)
        return made

    def bind(self, repository):
        """An engine's own repository on this transaction."""
        return repository(self._core, self._sql)


class SqlUnitOfWork(_Repositories):
    def __init__(self, engine: Engine, *, read_only: bool = False, wait: bool = True):
        self._engine = engine
        self._read_only = read_only
        self._wait = wait
        self._core = None

    def __enter__(self) -> SqlUnitOfWork:
        if not self._wait and not self._read_only:
            raise WouldWait()  # a Core write waits in SQLite's busy handler: never without waiting
        connection = self._engine.connect()
        if self._read_only:
            # Readers need no write lock (SQLite); other databases ignore this option.
            connection = connection.execution_options(sqlite_begin="DEFERRED")
        connection.begin()
        self._core = connection
        self._sql = sql_of(connection)
        return self

    def commit(self) -> None:
        assert self._core is not None
        # The next statement begins a new transaction on its own (SQLAlchemy autobegin).
        self._core.commit()

    def __exit__(self, *exc) -> None:
        assert self._core is not None
        try:
            self._core.rollback()
        finally:
            self._core.close()
            self._core = None


class WriterGate:
    """Where SQLite writers of the hot path queue. SQLite lets one writer in at a time and makes
    the others sleep and retry (1 to 100 ms, growing): under load that sleep is the latency.
    Here they wait on a lock instead and go in the moment it is free: a mutex for the threads
    of this process, an ``flock`` for the worker processes of the data dir."""

    def __init__(self, path: Path):
        self._path = path
        self._mutex = threading.Lock()
        self._fd: int | None = None
        self._pid = 0

    def __enter__(self) -> None:
        self._mutex.acquire()
        try:
            fcntl.flock(self._file(), fcntl.LOCK_EX)
        except BaseException:
            self._mutex.release()
            raise

    def __exit__(self, *exc) -> None:
        try:
            fcntl.flock(self._file(), fcntl.LOCK_UN)
        finally:
            self._mutex.release()

    def _file(self) -> int:
        # Opened by each process: an flock taken through a descriptor inherited across fork
        # would be shared with the parent.
        if self._fd is None or self._pid != os.getpid():
            self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
            self._pid = os.getpid()
        return self._fd


# The lean connections a process keeps to PostgreSQL at most.
POSTGRES_CONNECTIONS = 8
# Kinds of lean connections. SQLite writers have their own (see LeanConnections); the event
# loop's, with group commit, commit without waiting for the disk (see store.wal_sync).
READER, WRITER, LOOP_WRITER = "reader", "writer", "loop writer"


class LeanConnections:
    """The hot path's connections, kept apart from SQLAlchemy's pool: its checkout and checkin
    (events, reset on return, PostgreSQL's pre-ping round trip) cost as much as a lean
    transaction itself. Each is made by the engine (its connect event sets SQLite's pragmas),
    then detached from the pool.

    SQLite writers have connections of their own that never sleep in the busy handler
    (``fail_fast``): the lean writer waits on its gate, and retries itself when a writer outside
    the gate holds the lock. PostgreSQL's are at most ``postgres_limit`` per process, and one
    idle for a while is checked before use (the database may have restarted meanwhile)."""

    IDLE_CHECK_SECONDS = 5.0

    def __init__(
        self, engine: Engine, keep: int = 64, postgres_limit: int = POSTGRES_CONNECTIONS, checkpoint_apart: bool = False
    ):
        self._engine = engine
        self._checkpoint_apart = checkpoint_apart
        self._keep = keep
        dialect = engine.dialect.name
        # An in-memory SQLite has no WAL (a reader holds a writer's commit back), so its writers
        # wait in SQLite's busy handler; one not shared between connections has only one.
        shared_memory = is_shared_memory(engine.url)
        self.fail_fast = dialect == "sqlite" and not isinstance(engine.pool, StaticPool) and not shared_memory
        self._own = self.fail_fast or shared_memory or dialect == "postgresql"
        self._postgres = dialect == "postgresql"
        self._slots = threading.BoundedSemaphore(postgres_limit) if self._postgres else None
        self._idle: dict[str, list[tuple[object, float]]] = _no_idle()
        self._pid = os.getpid()
        self._static = None  # the in-memory database's one connection, checked out once

    def acquire(self, kind: str = READER):
        """``(handle, driver connection)``; give the handle back to :meth:`release`."""
        if not self._own:  # the in-memory database: one connection (the mock's), never closed
            if self._static is None:
                self._static = self._engine.raw_connection()
            return None, self._static.driver_connection
        if self._pid != os.getpid():  # never use a connection across fork
            self._idle, self._pid = _no_idle(), os.getpid()
        if self._slots is not None:
            self._slots.acquire()
        try:
            while True:
                try:
                    driver, since = self._idle[kind].pop()  # atomic under the GIL
                except IndexError:
                    break
                if self._slots is None or time.monotonic() - since < self.IDLE_CHECK_SECONDS or _answers(driver):
                    return (driver, kind), driver
                _close_quietly(driver)
            pooled = self._engine.raw_connection()
            driver = pooled.driver_connection
            pooled.detach()  # closed by us, never returned to the pool
            if kind == READER and self._postgres:
                # PostgreSQL's lean reads are single statements: in autocommit, each is one round
                # trip (not three, with BEGIN and ROLLBACK), and a ROLLBACK no longer drops the
                # connection's prepared statements.
                driver.autocommit = True
            if kind != READER and self.fail_fast:
                driver.execute("PRAGMA busy_timeout=0")
                if self._checkpoint_apart:  # commits on the event loop append to the WAL only
                    driver.execute("PRAGMA wal_autocheckpoint=0")
                if kind == LOOP_WRITER:
                    driver.execute("PRAGMA synchronous=NORMAL")
            return (driver, kind), driver
        except BaseException:
            if self._slots is not None:
                self._slots.release()
            raise

    def release(self, handle, reusable: bool) -> None:
        if not self._own:
            return
        driver, kind = handle
        try:
            idle = self._idle[kind]
            if reusable and len(idle) < self._keep and self._pid == os.getpid():
                idle.append((driver, time.monotonic()))
            else:
                _close_quietly(driver)
        finally:
            if self._slots is not None:
                self._slots.release()

    def close(self) -> None:
        if self._static is not None:
            self._static.close()
            self._static = None
        idle, self._idle = self._idle, _no_idle()
        for driver, _ in (pair for pairs in idle.values() for pair in pairs):
            _close_quietly(driver)


def _no_idle() -> dict[str, list[tuple[object, float]]]:
    return {READER: [], WRITER: [], LOOP_WRITER: []}


def _answers(driver) -> bool:
    try:
        driver.execute("SELECT 1")
        driver.rollback()
        return True
    except Exception:  # noqa: BLE001 - any failure: a new connection is made instead
        return False


def _close_quietly(driver) -> None:
    try:
        driver.close()
    except Exception:  # noqa: BLE001 - a broken connection may fail to close; it is dropped anyway
        pass


class LeanUnitOfWork(_Repositories):
    """Plain SQL only (a repository method on Core fails here): the hot path's transactions.

    With ``wal``, a write that must not wait (the event loop's) commits without waiting for the
    disk and is counted there: its answer waits for the group's sync instead (see store.wal_sync)."""

    def __init__(
        self,
        engine: Engine,
        connections: LeanConnections,
        *,
        read_only: bool = False,
        gate: WriterGate | None = None,
        wait: bool = True,
        wal: WalSync | None = None,
    ):
        self._engine = engine
        self._connections = connections
        self._read_only = read_only
        self._wait = wait
        self._gate = None if read_only else gate
        self._wal = wal if not read_only and not wait else None
        self._core = None
        self._pooled = self._driver = None

    def __enter__(self) -> LeanUnitOfWork:
        kind = READER if self._read_only else LOOP_WRITER if self._wal is not None else WRITER
        self._pooled, self._driver = self._connections.acquire(kind)
        dialect = self._engine.dialect.name
        self._sql = Sql(self._driver, dialect)
        if self._read_only:
            # A read needs no transaction: the lean reads are single statements, each its own snapshot.
            return self
        if dialect != "sqlite":
            if not self._wait:
                self._connections.release(self._pooled, reusable=True)
                raise WouldWait()  # row locks of a server may be held for long
            return self
        try:
            # The connection is in autocommit mode (see store.database): the transaction is ours.
            self._begin()
        except BaseException:
            # __exit__ will not run: give back what was taken.
            self._connections.release(self._pooled, reusable=False)
            raise
        return self

    def _begin(self) -> None:
        """Take SQLite's write lock. The gate is held only while that lock is ours: a writer that
        finds it taken by a writer outside the gate (a Core transaction, another program) lets the
        gate go while it waits, so whoever waits on the gate waits for lean transactions only."""
        if not self._connections.fail_fast:
            # In memory: one shared connection (no other writer to wait for), or the mock's
            # shared database (its busy handler waits for the other writer).
            self._driver.execute("BEGIN IMMEDIATE")
            return
        deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
        pause = 0.001
        while True:
            if self._gate is not None:
                self._gate.__enter__()
            try:
                began = self._begin_at_once()
            except BaseException:
                if self._gate is not None:
                    self._gate.__exit__()
                raise
            if began:
                return
            if self._gate is not None:
                self._gate.__exit__()
            if not self._wait:
                raise WouldWait()
            if time.monotonic() > deadline:
                raise sqlite3.OperationalError("database is locked")
            time.sleep(pause)
            pause = min(pause * 2, 0.05)

    def _begin_at_once(self) -> bool:
        """BEGIN IMMEDIATE on a writer's connection (no busy wait: see LeanConnections); False
        when another writer holds the lock."""
        try:
            self._driver.execute("BEGIN IMMEDIATE")
            return True
        except sqlite3.OperationalError as error:
            if "locked" in str(error) or "busy" in str(error):
                return False
            raise

    def commit(self) -> None:
        if self._engine.dialect.name == "sqlite":
            self._driver.execute("COMMIT")  # what follows runs in autocommit mode
            if self._wal is not None:
                self._wal.committed()
        else:
            self._driver.commit()

    def __exit__(self, *exc) -> None:
        reusable = False
        try:
            connection = self._driver
            if self._engine.dialect.name == "sqlite":
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
            else:
                connection.rollback()
            reusable = True
        finally:
            self._connections.release(self._pooled, reusable)
            self._pooled = self._driver = None
            if self._gate is not None and self._engine.dialect.name == "sqlite":
                self._gate.__exit__()


class SqlUnitOfWorkFactory:
    """``group_commit`` (SQLite in a file): the event loop's lean writes are synced as a group,
    through :attr:`wal` (see store.wal_sync); what serves their answers must wait for it."""

    def __init__(
        self, engine: Engine, gate: WriterGate | None = None, *, checkpoint_apart: bool = False, group_commit: bool = False
    ):
        self.engine = engine
        self.embedded = engine.dialect.name == "sqlite"
        self._gate = gate
        self._lean_connections = LeanConnections(engine, checkpoint_apart=checkpoint_apart)
        self._thread = threading.local()
        # fail_fast: SQLite in a file (one in memory has no WAL).
        self.wal = WalSync(Path(engine.url.database)) if group_commit and self._lean_connections.fail_fast else None

    def __call__(self, *, read_only: bool = False, lean: bool = False) -> SqlUnitOfWork | LeanUnitOfWork:
        wait = not getattr(self._thread, "not_waiting", False)
        if lean:
            return LeanUnitOfWork(
                self.engine, self._lean_connections, read_only=read_only, gate=self._gate, wait=wait, wal=self.wal
            )
        return SqlUnitOfWork(self.engine, read_only=read_only, wait=wait)

    @contextlib.contextmanager
    def without_waiting(self) -> Iterator[None]:
        self._thread.not_waiting = True
        try:
            yield
        finally:
            self._thread.not_waiting = False

    def close(self) -> None:
        """Close the hot path's own connections (the engine's pool is the engine's to dispose)."""
        self._lean_connections.close()
        if self.wal is not None:
            self.wal.close()
