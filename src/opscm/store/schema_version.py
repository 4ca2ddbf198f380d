"""Whether a database is one this opscm can serve from: it answers, and its schema is at the
newest migration this opscm knows (Alembic's revision in the database against the head)."""

from __future__ import annotations

import logging

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from .revisions import HEAD_REVISION, current_revision

log = logging.getLogger(__name__)


def schema_problem(engine: Engine) -> str | None:
    """None when the database answers at the head revision; else what is wrong (no driver
    details: they are logged, the answer goes to anyone who asks)."""
    try:
        # DEFERRED (SQLite): a reader, never queued behind writers for the write lock.
        with engine.connect().execution_options(sqlite_begin="DEFERRED") as connection:
            current = current_revision(connection)
    except SQLAlchemyError as error:
        log.debug("readiness: %s", str(getattr(error, "orig", None) or error).strip().splitlines()[0])
        return "the database does not answer"
    if current != HEAD_REVISION:
        return f"the database schema is at revision {current or 'none'}; this opscm needs {HEAD_REVISION}"
    return None
