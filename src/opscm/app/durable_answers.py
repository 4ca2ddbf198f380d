"""Answers wait for the disk: the event loop's side of SQLite's group commit (store/wal_sync.py).

The loop's writers commit without syncing; an answer made while any such commit is not yet on
disk is held, and one sync makes all of them durable at once. Where that sync runs depends on
the disk, as measured by the syncs made so far:

- with a few other requests in progress (at most ``FEW``) and a fast disk (a sync of at most
  ``LOOP_SYNC_SECONDS``, as an SSD's): on the loop, at the end of its turn, so every answer made
  in that turn shares it. The loop waits that long; the hand-off to a thread and back cost more
  (8 Chef clients: 0.93-0.97 ms of CPU per association against 0.82-0.84);
- with more in progress, on a slower disk, or before any sync was measured: in a thread of its
  own, while the loop goes on with other requests. Commits counted during that sync wait for the
  next one, which starts as soon as it ends: under load one sync serves every answer of its
  moment. With many requests waiting, a sync on the loop gained nothing (64 Chef clients: even)
  and would put every one of them behind that sync's worst case (one slowed by a checkpoint).

An answer made while no other request is in progress (one client, as a node booting alone) is
synced on the loop at once, whatever the disk: there is nobody to group with or to stall.

An answer read from the store (a Puppet CA document) may show commits that this process did not
count: another worker's, on the same data dir. It waits for a sync begun after its read: fdatasync
is per file, so that one sync of the WAL makes every process's commits the read saw durable.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import logging
import time
from collections.abc import Callable

from opscm.service.ports import CommitSync

log = logging.getLogger("opscm.store")

# Told True once the commits before it are on disk, False when the disk failed.
Waiter = Callable[[bool], None]
# A sync expected to take at most this long is made on the event loop (see the module's doc).
LOOP_SYNC_SECONDS = 0.001
# At most this many other requests in progress let the loop make a sync (see the module's doc).
FEW = 4
# What a caller that does not count the requests in progress passes: more than a few.
MANY = FEW + 1
# The weight of the newest sync in the expected time: a disk that slows down is seen within a few.
_NEWEST = 0.25


class DurableAnswers:
    def __init__(self, wal: CommitSync | None, clock: Callable[[], float] = time.perf_counter):
        self._wal = wal
        self._clock = clock
        self._waiting: list[Waiter] = []
        self._syncing = False
        self._expected: float | None = None  # seconds a sync takes, as measured; None: not yet
        self._thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="opscm-wal-sync") if wal else None

    def pending(self) -> bool:
        """Whether an answer made now must wait (a commit of this process is not on disk yet)."""
        return self._wal is not None and self._wal.pending()

    def then(self, waiter: Waiter, others: int = MANY) -> None:
        """On the event loop: ``waiter(True)`` once a sync begun after this call is done (every
        commit counted so far, and every other process's made so far, is on disk); ``others``:
        how many other requests are in progress (see the module's doc)."""
        if not others and not self._syncing and not self._waiting:
            waiter(self._sync_here())
            return
        self._waiting.append(waiter)
        if not self._syncing:
            self._start(others)

    async def synced(self, others: int = MANY) -> bool:
        """Whether every commit counted so far is on disk (waits for it; False: the disk failed)."""
        return not self.pending() or await self._next_sync(others)

    async def read_on_disk(self, others: int = MANY) -> bool:
        """Whether every commit that a read made before this call could have seen is on disk,
        other processes' too (waits for a sync begun after it, even with none of this process's
        pending; False: the disk failed). Without group commit there is nothing to wait for."""
        return self._wal is None or await self._next_sync(others)

    async def _next_sync(self, others: int) -> bool:
        future = asyncio.get_running_loop().create_future()
        self.then(lambda ok: future.done() or future.set_result(ok), others)  # done: its awaiter was cancelled
        return await future

    def _sync_on_loop(self, others: int) -> bool:
        """Whether a sync that ``others`` requests in progress may wait for is made on the loop."""
        return others <= FEW and self._expected is not None and self._expected <= LOOP_SYNC_SECONDS

    def _sync_here(self) -> bool:
        try:
            self._timed_sync()
        except OSError as failure:
            _log_failure(failure)
            return False
        return True

    def _timed_sync(self) -> None:
        assert self._wal is not None  # a sync was asked for: there is group commit
        started = self._clock()
        try:
            self._wal.sync()
        finally:
            took = self._clock() - started
            # A float assigned whole: the sync thread and the loop never see half of one.
            self._expected = took if self._expected is None else (1 - _NEWEST) * self._expected + _NEWEST * took

    def _start(self, others: int = MANY) -> None:
        assert self._thread is not None  # as in _timed_sync
        self._syncing = True
        loop = asyncio.get_running_loop()
        if self._sync_on_loop(others):
            # After the callbacks already due in this turn: the answers they make join the batch.
            loop.call_soon(self._sync_batch_here)
            return
        batch, self._waiting = self._waiting, []
        # Every waiter of the batch came after its commit was counted, and the sync reads the
        # count when it starts, in the thread, later still.
        future = loop.run_in_executor(self._thread, self._timed_sync)
        future.add_done_callback(functools.partial(self._done, batch))

    def _sync_batch_here(self) -> None:
        batch, self._waiting = self._waiting, []
        self._finish(batch, self._sync_here())

    def _done(self, batch: list[Waiter], future: asyncio.Future) -> None:
        ok = not future.cancelled() and future.exception() is None
        if not ok and not future.cancelled():
            _log_failure(future.exception())
        self._finish(batch, ok)

    def _finish(self, batch: list[Waiter], ok: bool) -> None:
        self._syncing = False
        for waiter in batch:
            try:
                waiter(ok)
            except Exception:  # noqa: BLE001 - one waiter's bug must not keep the others' answers
                log.exception("a held answer failed")
        if self._waiting:
            self._start()

    def close(self) -> None:
        if self._thread is not None:
            self._thread.shutdown(wait=False, cancel_futures=True)


def _log_failure(failure: BaseException | None) -> None:
    log.critical("the database's WAL could not be synced to disk (%s): held answers fail", failure)
