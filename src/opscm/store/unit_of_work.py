"""One transaction per use case: every repository shares its connection.

``SqlUnitOfWork`` runs on SQLAlchemy Core (plain SQL too, on the same DBAPI connection).
A *lean* unit of work runs only plain SQL on a raw pooled connection, for the association hot
path: a Core connection and its events cost ~120 µs a transaction, a raw one ~10 µs.
"""

from __future__ import annotations

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


class LeanUnitOfWork(_Repositories):
    """Plain SQL only (a repository method on Core fails here): the hot path's transactions."""

    def __init__(self, engine: Engine, *, read_only: bool = False):
        self._engine = engine
        self._read_only = read_only
        self._core = None
        self._pooled = None

    def __enter__(self) -> LeanUnitOfWork:
        self._pooled = self._engine.raw_connection()
        dialect = self._engine.dialect.name
        self._sql = Sql(self._pooled.driver_connection, dialect)
        if dialect == "sqlite":
            # The connection is in autocommit mode (see store.database): the transaction is ours.
            self._pooled.driver_connection.execute("BEGIN DEFERRED" if self._read_only else "BEGIN IMMEDIATE")
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


class SqlUnitOfWorkFactory:
    def __init__(self, engine: Engine):
        self.engine = engine

    def __call__(self, *, read_only: bool = False, lean: bool = False) -> SqlUnitOfWork | LeanUnitOfWork:
        return (LeanUnitOfWork if lean else SqlUnitOfWork)(self.engine, read_only=read_only)
