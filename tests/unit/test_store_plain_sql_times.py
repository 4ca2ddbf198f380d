"""Plain SQL writes a time as SQLAlchemy Core stores it in SQLite, so Core reads it back (and
orders and compares it as Core's own)."""

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy.dialects import sqlite

from opscm.store.schema import UtcDateTime
from opscm.store.sql.base import Sql

DIALECT = sqlite.dialect()
MOMENTS = [
    datetime(1, 1, 1, tzinfo=timezone.utc),
    datetime(2026, 12, 2, 5, 6, 7, tzinfo=timezone.utc),  # no microseconds: still written
    datetime(2026, 12, 2, 5, 6, 7, 12, tzinfo=timezone.utc),
    datetime(2026, 12, 2, 1, 2, 3, 999999, tzinfo=timezone(timedelta(hours=-5, minutes=-30))),
    datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=timezone.utc),
]


def core_stored(moment: datetime) -> str:
    """What Core binds for a UtcDateTime column in SQLite (the type's own step, then SQLite's DATETIME)."""
    return UtcDateTime().dialect_impl(DIALECT).bind_processor(DIALECT)(moment)


@pytest.mark.parametrize("moment", MOMENTS, ids=str)
def test_a_time_is_written_as_core_writes_it(moment):
    assert Sql(None, "sqlite").time(moment) == core_stored(moment)


def test_a_transaction_writes_each_moment_it_is_given():
    sql = Sql(None, "sqlite")
    first, second = MOMENTS[2], MOMENTS[2] + timedelta(microseconds=1)
    assert sql.time(first) == sql.time(first) == core_stored(first)
    assert sql.time(second) == core_stored(second) != core_stored(first)
    assert sql.time(first) == core_stored(first)
    assert sql.time(None) is None


def test_postgresql_gets_the_moment_in_utc():
    moment = MOMENTS[3]
    stored = Sql(None, "postgresql").time(moment)
    assert stored == moment and stored.tzinfo is timezone.utc
