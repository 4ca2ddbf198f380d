"""The workers' counts of their connections (app/connection_shares.py): who holds more than
its share, and counts that every forked worker sees."""

import os

import pytest

from opscm.app.connection_shares import ConnectionShares, over_share


@pytest.mark.parametrize(
    ("mine", "total", "workers", "over"),
    [
        (5, 8, 2, True),  # 4 and 4 are possible
        (4, 8, 2, False),
        (4, 7, 2, False),  # 4 and 3 is as even as 7 gets
        (5, 7, 2, True),
        (8, 8, 2, True),
        (2, 2, 2, True),
        (1, 1, 2, False),
        (34, 64, 2, False),  # among many, a sixteenth of slack: no churn for a connection or two
        (35, 64, 2, True),
        (3, 8, 3, False),
        (4, 8, 3, True),
    ],
)
def test_over_share(mine, total, workers, over):
    assert over_share(mine, total, workers) is over


def test_a_worker_counts_its_own_and_reads_all():
    shares = ConnectionShares(2)
    first, second = shares.of_worker(0), shares.of_worker(1)
    for _ in range(3):
        first.opened()
    second.opened()
    assert shares.counts() == [3, 1]
    assert first.over() and not second.over()
    first.closed()
    assert shares.counts() == [2, 1] and not first.over()


def test_one_or_two_connections_are_never_sent_away():
    """One busy client beside an idle one (an admin's keep-alive connection) stays put."""
    shares = ConnectionShares(2)
    share = shares.of_worker(0)
    share.opened()
    assert shares.counts() == [1, 0] and not share.over()
    share.opened()
    assert shares.counts() == [2, 0] and not share.over()
    share.opened()
    assert shares.counts() == [3, 0] and share.over()


def test_forked_workers_see_each_others_counts():
    shares = ConnectionShares(2)
    pid = os.fork()
    if pid == 0:  # a worker: counts 5 connections in its own slot
        share = shares.of_worker(1)
        for _ in range(5):
            share.opened()
        os._exit(0)
    os.waitpid(pid, 0)
    assert shares.counts() == [0, 5]


def test_a_restarted_worker_starts_from_zero():
    shares = ConnectionShares(2)
    dead = shares.of_worker(1)
    for _ in range(4):
        dead.opened()  # a worker that died holding 4: its connections died with it
    shares.of_worker(1)
    assert shares.counts() == [0, 0]


def test_a_client_sent_away_is_gone_from_the_count_and_told():
    shares = ConnectionShares(2)
    share = shares.of_worker(0)
    told = []
    share.on_sent_away = lambda: told.append(1)
    for _ in range(3):
        share.opened()
    share.sent_away()
    assert shares.counts() == share.counts() == [2, 0] and told == [1]
