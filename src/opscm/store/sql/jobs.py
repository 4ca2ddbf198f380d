"""SQL store of persisted jobs, claimed under a lease."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timedelta

from sqlalchemy import func, insert, select, update

from opscm.service.ports import (
    Job,
)

from .. import schema as t
from .base import Repository

# Which jobs may be claimed, in one place for the idle poll (a lean read) and the claim itself
# (plain SQL too, so both read the same words).
_LEASE_FREE = "(lease_until IS NULL OR lease_until < :now)"
_CLAIMABLE = f"state = 'pending' AND {_LEASE_FREE} AND (run_after IS NULL OR run_after <= :now)"


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

    def claim(self, now: datetime, lease_seconds: float, *, running: Collection[int] = ()) -> Job | None:
        """Take the oldest pending job whose lease is free, but those in ``running`` (this
        process's, whatever their lease says); the lease outlives a crashed worker."""
        sql, at = self._sql, self._sql.time(now)
        params: dict = {"now": at, **{f"running{i}": job_id for i, job_id in enumerate(running)}}
        not_running = f" AND id NOT IN ({', '.join(f':running{i}' for i in range(len(running)))})" if running else ""
        row = sql.first(
            "SELECT id, kind, server_id, attempts, payload, created_at FROM jobs "
            f"WHERE {_CLAIMABLE}{not_running} ORDER BY id LIMIT 1",
            params,
        )
        if row is None:
            return None
        job_id, kind, server_id, attempts, payload, created_at = row
        lease = sql.time(now + timedelta(seconds=lease_seconds))
        if not sql.changed(
            f"UPDATE jobs SET lease_until = :lease, attempts = attempts + 1 WHERE id = :id AND {_LEASE_FREE}",
            {"lease": lease, "id": job_id, "now": at},
        ):
            return None
        return Job(job_id, kind, server_id, attempts + 1, sql.read_json(payload), sql.read_time(created_at))

    def renew(self, job_id: int, attempt: int, until: datetime) -> bool:
        """Extend the lease of a job still running under the claim that made ``attempt``; False
        when another claim took it meanwhile."""
        return self._sql.changed(
            # A lease only: a job given back (retry) or finished has none, and keeps none.
            "UPDATE jobs SET lease_until = :until "
            "WHERE id = :id AND attempts = :attempt AND state = 'pending' AND lease_until IS NOT NULL",
            {"until": self._sql.time(until), "id": job_id, "attempt": attempt},
        )

    def claimable(self, now: datetime) -> bool:
        # A lean read: the idle runner asks this four times a second.
        return self._sql.first(f"SELECT 1 FROM jobs WHERE {_CLAIMABLE} LIMIT 1", {"now": self._sql.time(now)}) is not None

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


