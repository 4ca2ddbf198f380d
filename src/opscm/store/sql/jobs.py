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
    def add(self, kind: str, server_id: str, now: datetime, payload: dict | None = None) -> int:
        result = self._db.execute(
            insert(t.jobs).values(
                kind=kind, server_id=server_id, state="pending", attempts=0, created_at=now, payload=payload
            )
        )
        return result.inserted_primary_key[0]

    def claim(self, now: datetime, lease_seconds: float) -> Job | None:
        """Take the oldest pending job whose lease is free; the lease outlives a crashed worker."""
        c = t.jobs.c
        free = or_(c.lease_until.is_(None), c.lease_until < now)
        row = (
            self._db.execute(select(t.jobs).where(c.state == "pending", free).order_by(c.id).limit(1))
            .mappings()
            .first()
        )
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
