"""Console sessions (sealed cookies, deadlines, CSRF tokens), who may sign in, windows, the chart."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from opscm.app.console.access import describe_operations, may_use_console
from opscm.app.console.chart import hourly_chart
from opscm.app.console.sessions import IDLE_TIMEOUT, LIFETIME, SessionCodec
from opscm.domain.windows import next_window_start
from opscm.service.console import HourCount
from opscm.service.ports import AccessKey
from tests.support.clock import FakeClock

KEY = AccessKey("AKIAEXAMPLEEXAMPLE01", "123456789012", "s3cret" * 6, "reader", ("opsworks-cm:Describe*",), None)
CONSOLE_KEY = b"k" * 32


def codec(clock=None):
    return SessionCodec(CONSOLE_KEY, clock or FakeClock())


def test_a_sealed_session_opens_with_the_same_key_only():
    clock = FakeClock()
    sealed = codec(clock).seal(codec(clock).start(KEY))
    assert codec(clock).open(sealed).key_id == KEY.access_key_id
    assert SessionCodec(b"x" * 32, clock).open(sealed) is None
    assert codec(clock).open(sealed[:-2] + ("AA" if sealed[-2:] != "AA" else "BB")) is None
    assert KEY.secret_access_key not in sealed and KEY.access_key_id not in sealed  # encrypted, not just signed


def test_session_ends_after_the_idle_time_unless_refreshed():
    clock = FakeClock()
    sessions = codec(clock)
    session = sessions.start(KEY)
    clock.advance(IDLE_TIMEOUT - timedelta(seconds=1))
    assert sessions.open(sessions.seal(session)) is not None
    session = sessions.refreshed(session)
    clock.advance(IDLE_TIMEOUT - timedelta(seconds=1))
    assert sessions.open(sessions.seal(session)) is not None
    clock.advance(timedelta(seconds=1))
    assert sessions.open(sessions.seal(session)) is None


def test_refreshing_never_goes_past_the_lifetime():
    clock = FakeClock()
    sessions = codec(clock)
    session = sessions.start(KEY)
    clock.advance(LIFETIME - timedelta(minutes=1))
    assert sessions.refreshed(session).expires_at == session.signed_in_at + LIFETIME.total_seconds()


def test_session_belongs_to_the_key_and_secret_it_was_made_for():
    sessions = codec()
    session = sessions.start(KEY)
    assert sessions.belongs_to(session, KEY)
    assert not sessions.belongs_to(session, AccessKey(KEY.access_key_id, KEY.account_id, "other", "r", KEY.actions, None))


def test_sign_in_token_matches_its_cookie_until_it_expires():
    clock = FakeClock()
    sessions = codec(clock)
    token, cookie = sessions.sign_in_token()
    assert sessions.sign_in_token_matches(cookie, token)
    assert not sessions.sign_in_token_matches(cookie, token + "x")
    assert not sessions.sign_in_token_matches(None, token)
    other_token, _ = sessions.sign_in_token()
    assert not sessions.sign_in_token_matches(cookie, other_token)
    clock.advance(timedelta(hours=1))
    assert not sessions.sign_in_token_matches(cookie, token)


def test_the_console_needs_every_describe_operation():
    assert "DescribeServers" in describe_operations() and "DescribeEvents" in describe_operations()
    for actions, allowed in [
        (("opsworks-cm:*",), True),
        (("opsworks-cm:Describe*",), True),
        (("opsworks-cm:describe*",), True),  # IAM actions match without case
        (("opsworks-cm:DescribeServers",), False),
        (("opsworks-cm:AssociateNode", "opsworks-cm:DescribeServers"), False),
    ]:
        key = AccessKey("AKIAEXAMPLEEXAMPLE02", "123456789012", "s", "k", actions, None)
        assert may_use_console(key) is allowed, actions


def test_next_window_start_daily_weekly_and_open():
    wednesday = datetime(2024, 5, 1, 10, 30, tzinfo=timezone.utc)
    assert next_window_start("08:00", wednesday) == datetime(2024, 5, 2, 8, 0, tzinfo=timezone.utc)
    assert next_window_start("10:00", wednesday) == datetime(2024, 5, 1, 10, 0, tzinfo=timezone.utc)  # open now
    assert next_window_start("Wed:08:00", wednesday) == datetime(2024, 5, 8, 8, 0, tzinfo=timezone.utc)
    assert next_window_start("Mon:08:00", wednesday) == datetime(2024, 5, 6, 8, 0, tzinfo=timezone.utc)
    late = datetime(2024, 5, 2, 0, 15, tzinfo=timezone.utc)  # Thursday, in Wednesday's 23:30 window
    assert next_window_start("Wed:23:30", late) == datetime(2024, 5, 1, 23, 30, tzinfo=timezone.utc)


def test_chart_scales_bars_to_the_busiest_hour():
    start = datetime(2024, 5, 1, tzinfo=timezone.utc)
    hours = [HourCount(start + timedelta(hours=h), associated=h, disassociated=0, failed=1 if h == 23 else 0) for h in range(24)]
    chart = hourly_chart(hours)
    assert chart.peak == 24 and chart.total == sum(range(24)) + 1
    assert chart.bars[0].segments == []
    busiest = chart.bars[-1]
    assert [s.css_class for s in busiest.segments] == ["bar-associated", "bar-failed"]
    assert busiest.segments[-1].y == chart.top  # the top of the scale
    assert [bar.label for bar in chart.bars if bar.label] == ["00:00", "06:00", "12:00", "18:00"]
