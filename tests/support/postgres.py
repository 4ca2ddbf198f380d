"""A fresh PostgreSQL database per use, dropped afterwards (OPSCM_TEST_POSTGRES: the admin URL)."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator

from .requirements import require

ADMIN_URL = os.environ.get("OPSCM_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")

try:
    import psycopg
except ImportError:  # required below, with the reason
    psycopg = None


@contextlib.contextmanager
def fresh_database() -> Iterator[str]:
    """The SQLAlchemy URL of a new, empty database."""
    require(psycopg is not None, "psycopg (pip install 'opscm[postgres]')")
    try:
        admin = psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as error:
        require(False, f"PostgreSQL at {ADMIN_URL} ({str(error).strip()[:200]})")
    name = f"opscm_{uuid.uuid4().hex[:10]}"
    admin.execute(f"CREATE DATABASE {name}")
    try:
        yield ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://") + "/" + name
    finally:
        admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
        admin.close()
