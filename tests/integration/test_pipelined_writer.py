"""A PostgreSQL writer in pipeline mode (store/pipelined_writer.py): statements not answered yet
wait in its buffer, so a transaction that fails must leave nothing behind, neither on the
server (a lock, an open transaction) nor queued for the next transaction of the connection."""

from __future__ import annotations

import psycopg
import pytest

from opscm.store.pipelined_writer import PipelinedWriter
from tests.support.postgres import fresh_database


@pytest.fixture
def database():
    with fresh_database() as url:
        plain = url.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(plain, autocommit=True) as admin:
            admin.execute("CREATE TABLE t (k int PRIMARY KEY)")
            yield plain


def _keys(url: str) -> list[int]:
    with psycopg.connect(url, autocommit=True) as other:
        return [k for (k,) in other.execute("SELECT k FROM t ORDER BY k")]


def _insert_elsewhere(url: str, key: int) -> None:
    """From another connection, giving up at once on a row lock (a lock left behind would hang)."""
    with psycopg.connect(url, autocommit=True) as other:
        other.execute("SET lock_timeout = '1s'")
        other.execute("INSERT INTO t VALUES (%s)", (key,))


def test_a_transaction_given_up_leaves_no_lock_and_nothing_queued(database):
    writer = PipelinedWriter(psycopg.connect(database))
    try:
        writer.begin()
        assert writer.driver.execute("INSERT INTO t VALUES (1) RETURNING k").fetchone() == (1,)  # answered: on the server
        writer.driver.execute("INSERT INTO t VALUES (2)")  # still in the buffer
        writer.rollback()  # as when the service raises mid-transaction
        _insert_elsewhere(database, 1)  # the row lock is gone
        writer.begin()
        writer.driver.execute("INSERT INTO t VALUES (3)")
        writer.commit()
        assert _keys(database) == [1, 3], "the queued insert of the transaction given up never ran"
    finally:
        writer.close()


def _fails_then_goes_on(database: str, fail) -> None:
    """``fail(writer)`` makes a transaction fail on a duplicate of key 1; rolled back, the
    connection's next transaction commits alone."""
    _insert_elsewhere(database, 1)
    writer = PipelinedWriter(psycopg.connect(database))
    try:
        writer.begin()
        with pytest.raises(psycopg.errors.UniqueViolation):
            fail(writer)
        writer.rollback()
        assert _keys(database) == [1]
        writer.begin()
        writer.driver.execute("INSERT INTO t VALUES (7)")
        writer.commit()
        assert _keys(database) == [1, 7]
    finally:
        writer.close()


def test_a_failure_of_a_queued_statement_surfaces_at_commit_and_the_connection_goes_on(database):
    def fail(writer):
        writer.driver.execute("INSERT INTO t VALUES (2)")
        writer.driver.execute("INSERT INTO t VALUES (1)")  # not answered yet
        writer.commit()

    _fails_then_goes_on(database, fail)


def test_a_failure_of_an_answered_statement_leaves_the_connection_usable(database):
    def fail(writer):
        writer.driver.execute("INSERT INTO t VALUES (5)")
        try:
            writer.driver.execute("INSERT INTO t VALUES (1) RETURNING k").fetchone()
        finally:
            writer.driver.execute("INSERT INTO t VALUES (6)")  # after the failure: the pipeline is aborted

    _fails_then_goes_on(database, fail)


def test_a_committed_transaction_costs_no_rollback_round_trip(database, tmp_path):
    writer = PipelinedWriter(psycopg.connect(database))
    try:
        writer.begin()
        writer.driver.execute("INSERT INTO t VALUES (8)")
        writer.commit()
        with open(tmp_path / "libpq.trace", "w") as trace:
            writer.driver.pgconn.trace(trace.fileno())
            writer.rollback()  # what every unit of work does on its way out
            writer.driver.pgconn.untrace()
        assert (tmp_path / "libpq.trace").read_text() == ""
    finally:
        writer.close()
