"""One transaction per use case: every repository shares its connection.

``SqlUnitOfWork`` runs on SQLAlchemy Core (plain SQL too, on the same DBAPI connection).
A *lean* unit of work runs only plain SQL on a raw pooled connection, for the association hot
path: a Core connection and its events cost ~120 µs a transaction, a raw one ~10 µs.
"""

from __future__ import annotations

import fcntl
import os
import threading
from pathlib import Path

from sqlalchemy import Connection, Engine

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
    def __init__(self, engine: Engine, *, read_only: bool = False):
        self._engine = engine
        self._read_only = read_only
        self._core = None

    def __enter__(self) -> SqlUnitOfWork:
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


class LeanUnitOfWork(_Repositories):
    """Plain SQL only (a repository method on Core fails here): the hot path's transactions."""

    def __init__(self, engine: Engine, *, read_only: bool = False, gate: WriterGate | None = None):
        self._engine = engine
        self._read_only = read_only
        self._gate = None if read_only else gate
        self._core = None
        self._pooled = None

    def __enter__(self) -> LeanUnitOfWork:
        self._pooled = self._engine.raw_connection()
        dialect = self._engine.dialect.name
        self._sql = Sql(self._pooled.driver_connection, dialect)
        if dialect == "sqlite" and not self._read_only:
            if self._gate is not None:
                self._gate.__enter__()
            # The connection is in autocommit mode (see store.database): the transaction is ours.
            # A read needs none: the lean reads are single statements, each its own snapshot.
            self._pooled.driver_connection.execute("BEGIN IMMEDIATE")
        return self

    def commit(self) -> None:
        if self._engine.dialect.name == "sqlite":
            self._pooled.driver_connection.execute("COMMIT")  # what follows runs in autocommit mode
        else:
            self._pooled.driver_connection.commit()

    def __exit__(self, *exc) -> None:
        try:
            connection = self._pooled.driver_connection
            if self._engine.dialect.name == "sqlite":
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
            else:
                connection.rollback()
        finally:
            self._pooled.close()
            self._pooled = None
            if self._gate is not None and self._engine.dialect.name == "sqlite":
                self._gate.__exit__()


class SqlUnitOfWorkFactory:
    def __init__(self, engine: Engine, gate: WriterGate | None = None):
        self.engine = engine
        self._gate = gate

    def __call__(self, *, read_only: bool = False, lean: bool = False) -> SqlUnitOfWork | LeanUnitOfWork:
        if lean:
            return LeanUnitOfWork(self.engine, read_only=read_only, gate=self._gate)
        return SqlUnitOfWork(self.engine, read_only=read_only)
