"""One transaction per use case: every repository shares its connection."""

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


class SqlUnitOfWork:
    def __init__(self, engine: Engine, *, read_only: bool = False):
        self._engine = engine
        self._read_only = read_only
        self._connection: Connection | None = None

    def __enter__(self) -> SqlUnitOfWork:
        connection = self._engine.connect()
        if self._read_only:
            # Readers need no write lock (SQLite); other databases ignore this option.
            connection = connection.execution_options(sqlite_begin="DEFERRED")
        connection.begin()
        self._connection = connection
        self.servers = SqlServers(connection)
        self.associations = SqlAssociations(connection)
        self.jobs = SqlJobs(connection)
        self.nodes = SqlNodes(connection)
        self.access_keys = SqlAccessKeys(connection)
        self.events = SqlEvents(connection)
        self.backups = SqlBackups(connection)
        self.tags = SqlTags(connection)
        return self

    def bind(self, repository):
        """An engine's own repository (``repository(connection)``) on this transaction."""
        assert self._connection is not None
        return repository(self._connection)

    def commit(self) -> None:
        assert self._connection is not None
        # The next statement begins a new transaction on its own (SQLAlchemy autobegin).
        self._connection.commit()

    def __exit__(self, *exc) -> None:
        assert self._connection is not None
        try:
            self._connection.rollback()
        finally:
            self._connection.close()
            self._connection = None


class SqlUnitOfWorkFactory:
    def __init__(self, engine: Engine):
        self.engine = engine

    def __call__(self, *, read_only: bool = False) -> SqlUnitOfWork:
        return SqlUnitOfWork(self.engine, read_only=read_only)
