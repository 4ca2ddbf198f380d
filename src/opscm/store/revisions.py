"""The schema revision this opscm serves, and the one a database is at, read without Alembic:
a start on a current schema (every start but the first after an upgrade) never imports it."""

from __future__ import annotations

from sqlalchemy import Connection, inspect, text

# The newest migration in migrations/versions (a test checks it against Alembic's own view).
HEAD_REVISION = "0004"


def current_revision(connection: Connection) -> str | None:
    """The revision recorded in the database; None when it has no schema yet."""
    if not inspect(connection).has_table("alembic_version"):
        return None
    return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
