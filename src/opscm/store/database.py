"""Opening the database: SQLite (WAL) by default, PostgreSQL by URL; schema by Alembic."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import ContextManager

from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.pool import StaticPool

from .revisions import HEAD_REVISION, current_revision

MIGRATIONS = Path(__file__).parent / "migrations"
# How long a SQLite writer waits for the write lock before "database is locked".
BUSY_TIMEOUT_MS = 30000
# A WAL file larger than this is cut to nothing by the leader's checkpoint once commits are few
# (see checkpoint_wal): one that grew in a storm, or while a long read kept it from starting
# over, does not keep its size on disk.
WAL_SIZE_LIMIT = 64 * 1024 * 1024


def sqlite_url(data_dir: Path) -> str:
    return f"sqlite:///{Path(data_dir).resolve() / 'opscm.db'}"


def shared_memory_url(name: str) -> str:
    """A SQLite database in this process's memory that its connections share (SQLite's memdb
    VFS): the in-process mock's. It lasts as long as its engine. It has no WAL: a writer's
    commit waits for the reads in progress, and new reads for that commit."""
    return f"sqlite:///file:/{name}?vfs=memdb&uri=true"


def is_shared_memory(url) -> bool:
    return "vfs=memdb" in str(url)


# The mock's database in memory: each page a transaction first writes is copied whole into the
# rollback journal, so pages half the usual 4 KiB cost a mocked association ~4% fewer
# instructions (1 KiB saves no more, and would split a Puppet certificate's row).
MEMORY_PAGE_SIZE = 2048


# PostgreSQL's connections give up on a peer that stopped answering instead of waiting forever
# (libpq's defaults): a new connection after 10 s, data unacknowledged for 10 s (a partition
# while a request is in flight), an idle connection after 30 s + 3 probes 10 s apart. A request
# then fails (503) and the next one connects again. A parameter of the URL's own wins.
POSTGRES_TIMEOUTS = {
    "connect_timeout": 10,
    "tcp_user_timeout": 10_000,
    "keepalives": 1,
    "keepalives_idle": 30,
    "keepalives_interval": 10,
    "keepalives_count": 3,
}


def open_database(url: str, *, durable: bool = True) -> Engine:
    """``durable=False`` (the in-process mock): SQLite does not wait for the disk at each commit."""
    if url.startswith("sqlite"):
        return _open_sqlite(url, durable)
    return create_engine(
        url, pool_pre_ping=True, future=True, hide_parameters=True, connect_args=postgres_connect_args(url)
    )  # hide_parameters: secrets never in logs


def postgres_connect_args(url: str) -> dict:
    """:data:`POSTGRES_TIMEOUTS` but those the URL sets itself (psycopg's and libpq's names)."""
    if not url.startswith("postgresql"):
        return {}
    given = make_url(url).query
    return {name: value for name, value in POSTGRES_TIMEOUTS.items() if name not in given}


def _open_sqlite(url: str, durable: bool = True) -> Engine:
    in_memory = url in ("sqlite://", "sqlite:///:memory:")
    shared_memory = is_shared_memory(url)
    in_file = not in_memory and not shared_memory
    if in_file:
        # Owner-only from the first byte: it holds sealed secrets. SQLite gives -wal/-shm the same mode.
        path = Path(url.removeprefix("sqlite:///"))
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        os.fchmod(fd, 0o600)  # also tightens a file made by an older opscm
        os.close(fd)
    engine = create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": 30},
        hide_parameters=True,
        # One shared connection keeps an in-memory database alive across threads.
        poolclass=StaticPool if in_memory else None,
    )

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection, _record):
        # Let SQLAlchemy's "begin" event own transactions (pysqlite's implicit BEGIN is deferred).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        if in_file:
            # No journal_size_limit: SQLite would cut the WAL file back at each restart, and in a
            # storm the file then grew again every second (see checkpoint_wal).
            cursor.execute("PRAGMA journal_mode=WAL")
        if shared_memory:  # effective only while the database is new (its first connection)
            cursor.execute(f"PRAGMA page_size={MEMORY_PAGE_SIZE}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        # FULL: a committed certificate or key survives a power cut; a test suite's mock needs not.
        cursor.execute(f"PRAGMA synchronous={'FULL' if durable else 'OFF'}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection):
        # IMMEDIATE takes the write lock up front, so two writers never deadlock on upgrade.
        mode = connection.get_execution_options().get("sqlite_begin", "IMMEDIATE")
        connection.exec_driver_sql(f"BEGIN {mode}")

    if shared_memory:
        # The database goes with its last connection: this one keeps it until the engine is disposed.
        keeper = engine.raw_connection()
        keeper.detach()

        @event.listens_for(engine, "engine_disposed")
        def _drop(_engine):
            keeper.close()

    return engine


# Seconds between checkpoints of the WAL by the leader (see checkpoint_wal).
CHECKPOINT_SECONDS = 1.0
# A WAL holding more frames than this (4 KiB pages: 16 MiB) after the leader's passive
# checkpoint is restarted (see checkpoint_wal).
RESTART_FRAMES = 4096
# How long a restart waits for readers still in the WAL before it gives up until the next one.
RESTART_WAIT_MS = 20
# A WAL not written for this long is quiet: its file may be truncated (see checkpoint_wal).
QUIET_SECONDS = 1.0


def checkpoint_wal(engine: Engine, gate: ContextManager | None = None) -> tuple[int, int, int]:
    """Copy the WAL's committed pages into the database file, without waiting for readers or
    writers (PASSIVE). The hot path's writers never checkpoint themselves (a checkpoint writes
    and syncs the database file: tens or hundreds of milliseconds, on the event loop); this,
    run by the leader in a thread of its own, keeps the WAL short instead.

    A passive checkpoint alone never lets the WAL start over while commits keep coming: SQLite
    goes back to its start only when every frame has been copied and no reader is in it, and
    under a storm a commit or a read always comes first. The WAL then grew by every page written
    (~45 KB per Chef association: 477 MB in 10 s of 8 clients), and each new page of it cost the
    kernel a zeroing. So a WAL longer than ``RESTART_FRAMES`` is restarted (RESTART) with the
    writers' ``gate`` held (the hot path's writers queue there, not in SQLite's busy sleeps): the
    frames committed since the passive pass are copied, readers get ``RESTART_WAIT_MS`` to leave
    the WAL, and the next commit writes it from its start again. The gate was held 0.6-7.4 ms
    once a second in a storm of 8 Chef clients.

    The file keeps its size when it starts over: it is written again in place. Cut back at each
    restart (SQLite's journal_size_limit, 64 MiB), a WAL that a storm fills with ~110 MB a
    second grew again every second, and each time the commits waiting for their sync stalled
    (64 Chef clients: ~40 requests at 2.5x the median or more once a second; p99 2.2-2.9x the
    median, 1.9-2.1x in place). A file larger than ``WAL_SIZE_LIMIT`` is truncated (TRUNCATE)
    once the storm is over: the WAL short again, or not written for ``QUIET_SECONDS`` (a WAL
    restarted by the last checkpoint still counts its frames until the next commit)."""
    pooled = engine.raw_connection()
    try:
        driver = pooled.driver_connection
        # (busy, frames in the WAL, frames copied into the database file)
        figures = tuple(driver.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone())
        if gate is None:
            return figures
        size, idle = _wal_file(f"{engine.url.database}-wal")
        if size > WAL_SIZE_LIMIT and (figures[1] <= RESTART_FRAMES or idle >= QUIET_SECONDS):
            mode = "TRUNCATE"  # the storm is over (a short WAL, or none written for a while)
        elif figures[1] > RESTART_FRAMES:
            mode = "RESTART"
        else:
            return figures
        with gate:
            driver.execute(f"PRAGMA busy_timeout={RESTART_WAIT_MS}")
            try:
                return tuple(driver.execute(f"PRAGMA wal_checkpoint({mode})").fetchone())
            finally:
                driver.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    finally:
        pooled.close()


def _wal_file(path: str) -> tuple[int, float]:
    """The WAL file's size, and the seconds since it was last written."""
    try:
        status = os.stat(path)
    except FileNotFoundError:
        return 0, 0.0
    return status.st_size, time.time() - status.st_mtime


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest migration (creates it on first start)."""
    with engine.connect().execution_options(sqlite_begin="DEFERRED") as connection:
        if current_revision(connection) == HEAD_REVISION:
            return  # nothing to do: Alembic (a quarter of a second to import) stays unloaded
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            # Replicas starting together migrate one after the other (released at commit).
            connection.exec_driver_sql("SELECT pg_advisory_xact_lock(4206617)")
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
