"""SQL store of persisted jobs, claimed under a lease."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, insert, or_, select, update

from opscm.service.ports import (
    Job,
)

from .. import schema as t
from .base import Repository


class SqlJobs(Repository):
    def add(
        self, kind: str, server_id: str, now: datetime, payload: dict | None = None, *, lease_seconds: float = 0
    ) -> int:
        # A lease taken at once keeps the runner off a job its requester is running itself.
        lease = now + timedelta(seconds=lease_seconds) if lease_seconds else None
        attempts = 1 if lease_seconds else 0
        result = self._db.execute(
            insert(t.jobs).values(
                kind=kind,
                server_id=server_id,
                state="pending",
                attempts=attempts,
                created_at=now,
                payload=payload,
                lease_until=lease,
            )
        )
        return result.inserted_primary_key[0]

    def retry(self, job_id: int, *, run_after: datetime, error: str) -> None:
        """Give a job back for another try, not before ``run_after``."""
        self._db.execute(
            update(t.jobs).where(t.jobs.c.id == job_id).values(lease_until=None, run_after=run_after, last_error=error)
        )

    def claim(self, now: datetime, lease_seconds: float) -> Job | None:
        """Take the oldest pending job whose lease is free; the lease outlives a crashed worker."""
        c = t.jobs.c
        free = _free(now)
        row = self._db.execute(_claimable(now).order_by(c.id).limit(1)).mappings().first()
        if row is None:
            return None
        taken = self._db.execute(
            update(t.jobs)
            .where(c.id == row["id"], free)
            .values(lease_until=now + timedelta(seconds=lease_seconds), attempts=c.attempts + 1)
        )
        if taken.rowcount != 1:
            return None
        return Job(
            id=row["id"],
            kind=row["kind"],
            server_id=row["server_id"],
            attempts=row["attempts"] + 1,
            payload=row["payload"],
            created_at=row["created_at"],
        )

    def claimable(self, now: datetime) -> bool:
        # Plain SQL (a lean read): the idle runner asks this four times a second.
        return (
            self._sql.first(
                "SELECT 1 FROM jobs WHERE state = 'pending' AND (lease_until IS NULL OR lease_until < :now) "
                "AND (run_after IS NULL OR run_after <= :now) LIMIT 1",
                {"now": self._sql.time(now)},
            )
            is not None
        )

    def finish(self, job_id: int, *, error: str | None = None) -> None:
        self._db.execute(
            update(t.jobs)
            .where(t.jobs.c.id == job_id)
            .values(state="failed" if error else "done", last_error=error, lease_until=None)
        )

    def release_leases(self) -> None:
        self._db.execute(update(t.jobs).where(t.jobs.c.state == "pending").values(lease_until=None))

    def unfinished(self) -> int:
        return self._db.scalar(select(func.count()).where(t.jobs.c.state == "pending"))

    def count_by_state(self) -> dict[str, int]:
        rows = self._db.execute(select(t.jobs.c.state, func.count()).group_by(t.jobs.c.state))
        return {state: count for state, count in rows}

    def prune(self, before: datetime, limit: int) -> int:
        """Forget up to ``limit`` finished jobs created before ``before``."""
        c = t.jobs.c
        return self._delete_some(t.jobs, c.id, (c.created_at < before) & (c.state != "pending"), limit)


def _free(now: datetime):
    c = t.jobs.c
    return or_(c.lease_until.is_(None), c.lease_until < now)


def _claimable(now: datetime):
    c = t.jobs.c
    due = or_(c.run_after.is_(None), c.run_after <= now)
    return select(t.jobs).where(c.state == "pending", _free(now), due)
