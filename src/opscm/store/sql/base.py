"""What every SQL repository shares: the transaction's connection, as SQLAlchemy Core and as
plain SQL on the same DBAPI connection.

The few statements of the association hot path are plain SQL: SQLAlchemy Core costs ~60 µs a
statement where the DBAPI cursor costs ~5 µs. Everything else stays on Core.
"""

from __future__ import annotations

import functools
import json
import re
from datetime import datetime, timezone

from sqlalchemy import ColumnElement, Connection, Table, delete, select

# How SQLAlchemy stores a DATETIME in SQLite (its isoformat(" ", "microseconds") of the naive UTC
# time; %-formatting is the cheapest way to write it).
_SQLITE_TIME = "%04d-%02d-%02d %02d:%02d:%02d.%06d"
_NAMED = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")


class Sql:
    """Plain SQL on one transaction's DBAPI connection. Statements use ``:name`` parameters in
    every dialect; values of the schema's types are converted as SQLAlchemy stores them."""

    def __init__(self, dbapi_connection, dialect: str):
        self._connection = dbapi_connection
        self.dialect = dialect
        self.sqlite = dialect == "sqlite"
        # Row locks that keep a read value until the transaction ends (SQLite's write lock does).
        self.for_share = "" if self.sqlite else " FOR SHARE"
        # A write transaction's reads of the rows it may save (see SqlUnitOfWork): SQLite's write
        # lock serialises such transactions already.
        self.for_update = ""
        # The last time converted: a transaction stores its one "now" in several rows.
        self._moment: datetime | None = None
        self._stored: str | datetime | None = None

    def execute(self, statement: str, params: dict | None = None):
        cursor = self._connection.cursor()
        cursor.execute(statement if self.sqlite else _pyformat(statement), params or {})
        return cursor

    def first(self, statement: str, params: dict | None = None):
        return self.execute(statement, params).fetchone()

    def changed(self, statement: str, params: dict | None = None) -> bool:
        """Whether an INSERT, UPDATE or DELETE of at most one row wrote one (an INSERT ... ON
        CONFLICT DO NOTHING that met its conflict did not). SQLite counts the row at once, as
        the statement ends (RETURNING would gather its rows in a temporary table first: a
        third of a small INSERT's cost). PostgreSQL tells by a returned row, not the row count:
        psycopg does not count the rows of ON CONFLICT DO NOTHING, and a pipelined writer knows
        the count only once the pipeline syncs (see store.pipelined_writer), where reading the
        row is one round trip."""
        if self.sqlite:
            return self.execute(statement, params).rowcount > 0
        return self.first(f"{statement} RETURNING 1", params) is not None

    def time(self, moment: datetime | None):
        """A value for a ``UtcDateTime`` column."""
        if moment is None:
            return None
        if moment is self._moment:
            return self._stored
        utc = moment if moment.tzinfo is timezone.utc else moment.astimezone(timezone.utc)  # the clock's are UTC
        # SQLAlchemy's SQLite DATETIME storage format, so Core reads what this wrote.
        stored = _SQLITE_TIME % (
            utc.year, utc.month, utc.day, utc.hour, utc.minute, utc.second, utc.microsecond
        ) if self.sqlite else utc
        self._moment, self._stored = moment, stored
        return stored

    @staticmethod
    def read_time(value) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)

    @staticmethod
    def json(value) -> str:
        """A value for a ``JSON`` column (PostgreSQL takes the text for its json type)."""
        return json.dumps(value)

    @staticmethod
    def read_json(value):
        return json.loads(value) if isinstance(value, (str, bytes)) else value


@functools.lru_cache(maxsize=256)
def _pyformat(statement: str) -> str:
    """``:name`` -> ``%(name)s`` for psycopg; a literal ``%`` doubled."""
    return _NAMED.sub(r"%(\1)s", statement.replace("%", "%%"))


def sql_of(connection: Connection) -> Sql:
    return Sql(connection.connection.dbapi_connection, connection.dialect.name)


class Repository:
    def __init__(self, connection: Connection | None, sql: Sql | None = None):
        # Core is None in a lean unit of work: only plain-SQL methods may run there.
        self._db = connection
        self._sql = sql if sql is not None else sql_of(connection)

    def _delete_some(self, table: Table, key, condition: ColumnElement[bool], limit: int) -> int:
        """Delete at most ``limit`` rows matching ``condition``: pruning in short transactions."""
        some = select(key).where(condition).limit(limit)
        return self._db.execute(delete(table).where(key.in_(some))).rowcount
