"""Background threads that run persisted jobs; they also pick up jobs left by a crash."""

from __future__ import annotations

import logging
import threading

from opscm.service.context import Dependencies
from opscm.service.jobs import run_job
from opscm.service.leases import lease_kept

log = logging.getLogger(__name__)

# A crashed replica's job is taken over once its lease ends; a running job's lease is renewed
# every RENEW_SECONDS, so a job that runs longer is never taken over while it runs.
LEASE_SECONDS = 120.0
RENEW_SECONDS = LEASE_SECONDS / 4
# A job queued by another worker (its wake reaches only its own process) starts within this.
# One idle thread polls; the others sleep until woken, so an idle runner costs one read a poll.
POLL_SECONDS = 0.25


class JobRunner:
    """Started and stopped as the process wins and loses the leadership: each start makes new threads."""

    def __init__(self, workers: int = 2):
        self._deps: Dependencies | None = None
        self._workers = workers
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._polling = threading.Lock()  # held by the one idle thread that polls
        self._threads: list[threading.Thread] = []
        self._running: set[int] = set()  # the ids of the jobs this process's threads run

    def wake(self) -> None:
        self._wake.set()

    def bind(self, deps: Dependencies) -> None:
        """The runner is made before the dependencies (they hold its ``wake``); bind closes the loop."""
        self._deps = deps

    def start(self) -> None:
        self._stop.clear()
        self._threads = [
            threading.Thread(target=self._loop, name=f"opscm-jobs-{i}", daemon=True) for i in range(self._workers)
        ]
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        for thread in self._threads:
            if thread.is_alive():
                thread.join(timeout)
        self._threads = []

    def run_pending(self) -> int:
        """Run every claimable job now, in this thread; returns how many ran."""
        assert self._deps is not None
        count = 0
        while not self._stop.is_set():
            # A read first: the poll of an idle queue must not take SQLite's write lock, which a
            # boot storm's associations queue for.
            with self._deps.uow(read_only=True, lean=True) as uow:
                if not uow.jobs.claimable(self._deps.clock.now()):
                    return count
            with self._deps.uow() as uow:
                # Never one this process runs already, whatever its lease says.
                job = uow.jobs.claim(self._deps.clock.now(), LEASE_SECONDS, running=frozenset(self._running))
                uow.commit()
            if job is None:
                return count
            # This thread is busy now: another idle one takes over the polling (and any more jobs).
            self._wake.set()
            self._running.add(job.id)
            try:
                with lease_kept(self._deps, job, LEASE_SECONDS, every=RENEW_SECONDS):
                    run_job(self._deps, job)
            finally:
                self._running.discard(job.id)
            count += 1
        return count

    def release_leases(self) -> None:
        assert self._deps is not None
        with self._deps.uow() as uow:
            uow.jobs.release_leases()
            uow.commit()

    def unfinished(self) -> int:
        assert self._deps is not None
        with self._deps.uow(read_only=True) as uow:
            return uow.jobs.unfinished()

    def _loop(self) -> None:
        while not self._stop.is_set():
            # Cleared before the run, so a wake during the run triggers another one at once.
            self._wake.clear()
            try:
                self.run_pending()
            except Exception:  # noqa: BLE001 - keep the runner alive across a store hiccup
                log.exception("job runner error")
            if self._stop.is_set():  # stop's wake may have come before the clear above
                return
            polls = self._polling.acquire(blocking=False)
            try:
                self._wake.wait(POLL_SECONDS if polls else None)
            finally:
                if polls:
                    self._polling.release()


class PeriodicTask:
    """Calls ``task`` every ``interval`` seconds in a daemon thread (the scheduler, health checks)."""

    def __init__(self, name: str, interval: float, task):
        self._name = name
        self._interval = interval
        self._task = task
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout)
        self._thread = None

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self._task()
            except Exception:  # noqa: BLE001 - the next period tries again
                log.exception("periodic task %s failed", self._name)
