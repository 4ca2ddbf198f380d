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

from opscm.service.ports import WouldWait

from .database import BUSY_TIMEOUT_MS, checkpoint_wal
from .lean_connections import LOOP_WRITER, READER, WRITER, LeanConnections
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

# PostgreSQL's lock_not_available: a statement of the event loop's gave up on a row lock.
LOCK_NOT_AVAILABLE = "55P03"


class _Repository:
    """A repository made on first use, on its unit of work's transaction, then kept in the unit
    of work's own attributes (a plain attribute read from then on). What
    ``functools.cached_property`` does, without the lock Python 3.11's takes at each first use."""

    def __init__(self, kind):
        self._kind = kind

    def __set_name__(self, owner, name: str) -> None:
        self._name = name

    def __get__(self, uow, owner=None):
        if uow is None:
            return self
        made = uow.__dict__[self._name] = self._kind(uow._core, uow._sql)
        return made


class _Repositories:
    """Every repository on this unit of work's transaction."""

    _core: Connection | None
    _sql: Sql

    servers = _Repository(SqlServers)
    associations = _Repository(SqlAssociations)
    jobs = _Repository(SqlJobs)
    nodes = _Repository(SqlNodes)
    access_keys = _Repository(SqlAccessKeys)
    events = _Repository(SqlEvents)
    backups = _Repository(SqlBackups)
    tags = _Repository(SqlTags)

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
        if not self._wait and (not self._read_only or self._engine.dialect.name != "sqlite"):
            # A Core write waits in SQLite's busy handler, and a networked database's pool may
            # have to connect: never without waiting.
            raise WouldWait()
        connection = self._engine.connect()
        if self._read_only:
            # Readers need no write lock (SQLite); other databases ignore this option.
            connection = connection.execution_options(sqlite_begin="DEFERRED")
        connection.begin()
        self._core = connection
        self._sql = sql_of(connection)
        if not self._read_only and not self._sql.sqlite:
            # A server read to be changed is locked until the change commits: two such
            # transactions (two CreateBackup calls, the scheduler and a DeleteServer) go one after
            # the other, the second on the first's row, as under SQLite's write lock.
            self._sql.for_update = " FOR UPDATE"
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
        dialect = self._engine.dialect.name
        # The event loop's writers: SQLite's with group commit; PostgreSQL's, which give up on a
        # row lock held for long (see LeanConnections).
        on_loop = self._wal is not None or (dialect != "sqlite" and not self._wait)
        kind = READER if self._read_only else LOOP_WRITER if on_loop else WRITER
        self._pooled, self._driver = self._connections.acquire(kind, wait=self._wait)
        self._sql = Sql(self._driver, dialect)
        self._pipelined = self._connections.pipelined(self._pooled)
        if self._pipelined is not None:
            self._pipelined.begin()  # sent with the first statement answered
        if self._read_only or dialect != "sqlite":
            # A read needs no transaction: the lean reads are single statements, each its own
            # snapshot.
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
        else:  # PostgreSQL: its writers are pipelined (its readers never commit)
            self._pipelined.commit()

    def __exit__(self, error_type, error, traceback) -> None:
        reusable = False
        try:
            connection = self._driver
            if self._engine.dialect.name == "sqlite":
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
            elif self._pipelined is not None:
                self._pipelined.rollback()
            # PostgreSQL's readers are in autocommit: no transaction to end.
            reusable = True
        finally:
            self._connections.release(self._pooled, reusable)
            self._pooled = self._driver = None
            if self._gate is not None and self._engine.dialect.name == "sqlite":
                self._gate.__exit__()
        if not self._wait and getattr(error, "sqlstate", None) == LOCK_NOT_AVAILABLE:
            raise WouldWait() from error  # rolled back: the request runs again in a thread


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

    @property
    def near(self) -> bool:
        return self.embedded or self._lean_connections.near

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

    def checkpoint_wal(self) -> tuple[int, int, int]:
        """SQLite's WAL checkpointed (see store.database.checkpoint_wal), restarted behind the
        writers' gate when it grew long."""
        return checkpoint_wal(self.engine, self._gate)

    def close(self) -> None:
        """Close the hot path's own connections (the engine's pool is the engine's to dispose)."""
        self._lean_connections.close()
        if self.wal is not None:
            self.wal.close()
