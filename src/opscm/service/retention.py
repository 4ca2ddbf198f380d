"""Pruning: finished association tokens, events and jobs older than their retention period.

Certificates and revocations are the engines' and are never pruned here: a revoked
certificate stays in the CRL until it expires (then maintenance removes it).
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # context holds a Retention: no import at run time
    from .context import Dependencies

# Rows deleted per transaction: a long delete would hold the write lock (SQLite).
BATCH = 1000


@dataclasses.dataclass(frozen=True)
class Retention:
    tokens: timedelta = timedelta(days=7)  # DescribeNodeAssociationStatus answers a token this long
    events: timedelta = timedelta(days=90)
    jobs: timedelta = timedelta(days=1)


@dataclasses.dataclass(frozen=True)
class Pruned:
    tokens: int = 0
    events: int = 0
    jobs: int = 0


def prune(deps: Dependencies) -> Pruned:
    now, keep = deps.clock.now(), deps.retention
    counts = {}
    for name, repository, before in (
        ("tokens", lambda uow: uow.associations, now - keep.tokens),
        ("events", lambda uow: uow.events, now - keep.events),
        ("jobs", lambda uow: uow.jobs, now - keep.jobs),
    ):
        total = 0
        while True:
            with deps.uow() as uow:
                deleted = repository(uow).prune(before, BATCH)
                uow.commit()
            total += deleted
            if deleted < BATCH:
                break
        counts[name] = total
    return Pruned(**counts)
