"""A fresh PostgreSQL database per use, on the machine's server (127.0.0.1:5432, trust auth).
Missing PostgreSQL fails under CI and skips elsewhere (see peers.missing_peer)."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator

from tests.support.peers import missing_peer

ADMIN_URL = os.environ.get("OPSCM_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")


@contextlib.contextmanager
def postgres_database() -> Iterator[str]:
    """A new database, dropped afterwards; yields its SQLAlchemy URL (psycopg 3)."""
    try:
        import psycopg
    except ImportError:
        missing_peer("psycopg is not installed (pip install 'opscm[postgres]')")
    name = f"opscm_{uuid.uuid4().hex[:10]}"
    try:
        admin = psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as error:
        missing_peer(f"PostgreSQL is not reachable at {ADMIN_URL}: {error}")
    admin.execute(f"CREATE DATABASE {name}")
    try:
        yield ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://") + "/" + name
    finally:
        admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
        admin.close()
