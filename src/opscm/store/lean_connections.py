"""The hot path's own database connections (see LeanConnections)."""

from __future__ import annotations

import math
import os
import threading
import time

from sqlalchemy import Engine
from sqlalchemy.pool import StaticPool

from opscm.service.ports import WouldWait

from .database import is_shared_memory
from .pipelined_writer import PipelinedWriter

# The lean connections a process keeps to PostgreSQL at most.
POSTGRES_CONNECTIONS = 8
# Kinds of lean connections. SQLite writers have their own (see LeanConnections); the event
# loop's, with group commit, commit without waiting for the disk (see store.wal_sync).
READER, WRITER, LOOP_WRITER = "reader", "writer", "loop writer"
# PostgreSQL this near serves the event loop's light requests: on the same host a round trip
# takes ~0.04 ms here. A lean association makes 3 and its poll 1 (see pipelined_writer), and a
# farther database would hold the loop that long each time while other requests wait; those go
# to the store's threads.
NEAR_ROUND_TRIP_SECONDS = 0.0002
# How long an event loop's PostgreSQL statement waits for a row lock (held by a Core
# transaction: a backup, a status change) before its request runs again in a thread.
LOOP_LOCK_TIMEOUT_MS = 5


class LeanConnections:
    """The hot path's connections, kept apart from SQLAlchemy's pool: its checkout and checkin
    (events, reset on return, PostgreSQL's pre-ping round trip) cost as much as a lean
    transaction itself. Each is made by the engine (its connect event sets SQLite's pragmas),
    then detached from the pool.

    SQLite writers have connections of their own that never sleep in the busy handler
    (``fail_fast``): the lean writer waits on its gate, and retries itself when a writer outside
    the gate holds the lock. PostgreSQL's are at most ``postgres_limit`` per process, and one
    idle for a while is checked before use (the database may have restarted meanwhile).

    PostgreSQL near enough (:attr:`near`) serves the event loop too: there a connection is taken
    only if one is idle and a slot is free (making one, or waiting for a slot, would hold the
    loop), and its writers give up on a row lock after ``LOOP_LOCK_TIMEOUT_MS``; otherwise
    WouldWait, and the request runs in a thread."""

    IDLE_CHECK_SECONDS = 5.0

    def __init__(
        self, engine: Engine, keep: int = 64, postgres_limit: int = POSTGRES_CONNECTIONS, checkpoint_apart: bool = False
    ):
        self._engine = engine
        self._checkpoint_apart = checkpoint_apart
        self._keep = keep
        dialect = engine.dialect.name
        # An in-memory SQLite has no WAL (a reader holds a writer's commit back), so its writers
        # wait in SQLite's busy handler; one not shared between connections has only one.
        shared_memory = is_shared_memory(engine.url)
        self.fail_fast = dialect == "sqlite" and not isinstance(engine.pool, StaticPool) and not shared_memory
        self._own = self.fail_fast or shared_memory or dialect == "postgresql"
        self._postgres = dialect == "postgresql"
        self._slots = threading.BoundedSemaphore(postgres_limit) if self._postgres else None
        self._idle: dict[str, list[tuple[object, float]]] = _no_idle()
        self._pid = os.getpid()
        self._static = None  # the in-memory database's one connection, checked out once
        # PostgreSQL's fastest round trip seen on a new connection, in seconds.
        self.round_trip = math.inf

    @property
    def near(self) -> bool:
        """PostgreSQL whose round trip is short enough to be made on the event loop."""
        return self.round_trip <= NEAR_ROUND_TRIP_SECONDS

    def acquire(self, kind: str = READER, *, wait: bool = True):
        """``(handle, driver connection)``; give the handle back to :meth:`release`. Without
        ``wait`` (the event loop), PostgreSQL's is an idle one and a free slot, or WouldWait."""
        if not self._own:  # the in-memory database: one connection (the mock's), never closed
            if self._static is None:
                self._static = self._engine.raw_connection()
            return None, self._static.driver_connection
        if self._pid != os.getpid():  # never use a connection across fork
            self._idle, self._pid = _no_idle(), os.getpid()
        if self._slots is not None and not self._slots.acquire(blocking=wait):
            raise WouldWait()
        try:
            # A DBAPI connection, or PostgreSQL's writer around one (see pipelined_writer).
            connection = self._idle_one(kind)
            if connection is None and self._postgres and not wait:
                # Making one would hold the loop: an idle writer becomes the loop's, or none.
                connection = self._loop_writer() if kind == LOOP_WRITER else None
                if connection is None:
                    raise WouldWait()
            if connection is None:
                connection = self._new(kind)
            return (connection, kind), _driver_of(connection)
        except BaseException:
            if self._slots is not None:
                self._slots.release()
            raise

    def _idle_one(self, kind: str):
        while True:
            try:
                connection, since = self._idle[kind].pop()  # atomic under the GIL
            except IndexError:
                return None
            fresh = time.monotonic() - since < self.IDLE_CHECK_SECONDS
            if self._slots is None or fresh or _answers(_driver_of(connection)):
                return connection
            _close_quietly(connection)

    def _loop_writer(self):
        """An idle writer made the event loop's: a row lock held longer than
        ``LOOP_LOCK_TIMEOUT_MS`` then fails its statement (lock_not_available), not the loop."""
        writer = self._idle_one(WRITER)
        if writer is not None:
            writer.run(f"SET lock_timeout = {LOOP_LOCK_TIMEOUT_MS}")  # the session's from now on
        return writer

    def _new(self, kind: str):
        pooled = self._engine.raw_connection()
        driver = pooled.driver_connection
        pooled.detach()  # closed by us, never returned to the pool
        if self._postgres:
            if kind == READER:
                # PostgreSQL's lean reads are single statements: in autocommit, each is one round
                # trip (not three, with BEGIN and ROLLBACK), and a ROLLBACK no longer drops the
                # connection's prepared statements.
                driver.autocommit = True
            self.round_trip = min(self.round_trip, _fastest_round_trip(driver))
            if kind != READER:
                return PipelinedWriter(driver)
        if kind != READER and self.fail_fast:
            driver.execute("PRAGMA busy_timeout=0")
            if self._checkpoint_apart:  # commits on the event loop append to the WAL only
                driver.execute("PRAGMA wal_autocheckpoint=0")
            if kind == LOOP_WRITER:
                driver.execute("PRAGMA synchronous=NORMAL")
        return driver

    @staticmethod
    def pipelined(handle) -> PipelinedWriter | None:
        """The PostgreSQL writer of ``handle`` (its transactions are the pipeline's), or None."""
        connection = handle[0] if handle is not None else None
        return connection if isinstance(connection, PipelinedWriter) else None

    def release(self, handle, reusable: bool) -> None:
        if not self._own:
            return
        connection, kind = handle
        try:
            idle = self._idle[kind]
            if reusable and len(idle) < self._keep and self._pid == os.getpid() and not _lost(connection):
                idle.append((connection, time.monotonic()))
            else:
                _close_quietly(connection)
        finally:
            if self._slots is not None:
                self._slots.release()

    def close(self) -> None:
        if self._static is not None:
            self._static.close()
            self._static = None
        idle, self._idle = self._idle, _no_idle()
        for connection, _ in (pair for pairs in idle.values() for pair in pairs):
            _close_quietly(connection)


def _no_idle() -> dict[str, list[tuple[object, float]]]:
    return {READER: [], WRITER: [], LOOP_WRITER: []}


def _fastest_round_trip(driver, tries: int = 3) -> float:
    """The fastest of a few ``SELECT 1`` on a new connection."""
    driver.execute("SELECT 1")  # a connection's first statement is slower
    fastest = math.inf
    for _ in range(tries):
        started = time.perf_counter()
        driver.execute("SELECT 1")
        fastest = min(fastest, time.perf_counter() - started)
    driver.rollback()
    return fastest


def _answers(driver) -> bool:
    try:
        driver.execute("SELECT 1")
        driver.rollback()
        return True
    except Exception:  # noqa: BLE001 - any failure: a new connection is made instead
        return False


def _lost(connection) -> bool:
    """A PostgreSQL connection the server dropped (a restart, a failover, a terminated backend):
    never kept, or the next request would fail on it, and the next, while reads came often
    enough to keep it from the idle check."""
    driver = _driver_of(connection)
    return bool(getattr(driver, "broken", False) or getattr(driver, "closed", False))


def _driver_of(connection):
    return connection.driver if isinstance(connection, PipelinedWriter) else connection


def _close_quietly(connection) -> None:
    try:
        connection.close()
    except Exception:  # noqa: BLE001 - a broken connection may fail to close; it is dropped anyway
        pass
