"""How many API connections each worker holds, so that a worker holding more than its share asks
a client to reconnect.

The kernel gives a new connection to one of the workers' SO_REUSEPORT sockets by a hash of its
addresses, whatever the workers hold already: a few long-lived keep-alive clients often land
unevenly (8 over 2 workers: 6 and 2 or worse one time in four, all 8 on one worker one time in a
hundred), and then most clients share one worker's event loop while the other core idles. A
worker holding more than its share answers a request with ``connection: close``; the client
opens a new connection, which the kernel places afresh, until the shares are even.

The counts live in memory the supervisor maps before it forks the workers: each worker writes
only its own slot (an aligned 64-bit word) and reads the others'.
"""

from __future__ import annotations

import mmap
from collections.abc import Callable

_SLOT = 8  # bytes: one signed 64-bit count per worker
# A worker holding fewer connections than this never asks a client to reconnect.
MIN_TO_SEND_AWAY = 3


def over_share(mine: int, total: int, workers: int) -> bool:
    """More than an even share of ``total`` connections (rounded up), with a slack of a sixteenth
    among many: 5 of 8 over 2 workers is over (4 and 4 are possible); 34 of 64 is not."""
    fair = -(-total // workers)
    return mine > fair + fair // 16


class ConnectionShares:
    """The open API connections of each of ``workers`` workers, in memory they all share."""

    def __init__(self, workers: int):
        self._memory = mmap.mmap(-1, _SLOT * workers)  # anonymous and shared: children see the writes
        self._counts = memoryview(self._memory).cast("q")

    def of_worker(self, index: int) -> WorkerShare:
        """Worker ``index``'s side (call it in that worker: its count starts again at 0, so that a
        restarted worker does not inherit the dead one's)."""
        return WorkerShare(self._counts, index)

    def counts(self) -> list[int]:
        return list(self._counts)


class WorkerShare:
    def __init__(self, counts: memoryview, index: int):
        self._counts = counts
        self._index = index
        counts[index] = 0
        self.on_sent_away: Callable[[], None] = lambda: None  # a metric's, when there are metrics

    def counts(self) -> list[int]:
        """Every worker's count, this one's included (they read it for /metrics)."""
        return list(self._counts)

    def opened(self) -> None:
        self._counts[self._index] += 1

    def closed(self) -> None:
        self._counts[self._index] -= 1

    def sent_away(self) -> None:
        """A connection this worker asks to close (counted as gone from now on)."""
        self.closed()
        self.on_sent_away()

    def over(self) -> bool:
        """More than its share, holding at least 3: an idle keep-alive connection counts as much
        as a busy one, and one busy client beside one idle (an admin's, say) would otherwise be
        sent away until the kernel placed it on the other worker."""
        counts = self._counts
        mine = counts[self._index]
        return mine >= MIN_TO_SEND_AWAY and over_share(mine, sum(counts), len(counts))
