"""A job's lease kept while it runs: a job whose lease ends is taken over (its runner crashed),
so one that runs long has its lease renewed, and is never taken over while it runs."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from datetime import timedelta

from .context import Dependencies
from .ports import Job

log = logging.getLogger(__name__)


@contextlib.contextmanager
def lease_kept(deps: Dependencies, job: Job, lease_seconds: float, every: float) -> Iterator[None]:
    """Renew ``job``'s lease to ``lease_seconds`` from now, ``every`` seconds, until the block ends."""
    done = threading.Event()

    def renew() -> None:
        while not done.wait(every):
            try:
                with deps.uow() as uow:
                    kept = uow.jobs.renew(job.id, job.attempts, deps.clock.now() + timedelta(seconds=lease_seconds))
                    uow.commit()
            except Exception:  # noqa: BLE001 - the next renewal tries again, within the lease
                log.exception("renewing the lease of job %s failed", job.id)
                continue
            if not kept:
                log.warning("job %s was taken over by another runner while it ran", job.id)
                return

    renewer = threading.Thread(target=renew, name=f"opscm-lease-{job.id}", daemon=True)
    renewer.start()
    try:
        yield
    finally:
        done.set()
