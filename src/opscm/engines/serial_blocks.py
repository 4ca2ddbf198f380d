"""Certificate serials taken from the database in blocks, as a cached sequence does: signing
never waits on the counter row, and the counter row is written once per block, not once per
certificate. Serials are unique; within one process they increase."""

from __future__ import annotations

import threading
from collections.abc import Callable

DEFAULT_BLOCK = 32


class SerialBlocks:
    def __init__(self, reserve: Callable[[str, int], int], block: int = DEFAULT_BLOCK):
        """``reserve(server_id, count)`` takes ``count`` serials in its own short transaction and
        returns the first."""
        self._reserve = reserve
        self._block = block
        self._lock = threading.Lock()
        self._ranges: dict[str, tuple[int, int]] = {}  # server id -> (next, end)

    def next(self, server_id: str) -> int:
        with self._lock:
            start, end = self._ranges.get(server_id, (0, 0))
            if start >= end:
                start = self._reserve(server_id, self._block)
                end = start + self._block
            self._ranges[server_id] = (start + 1, end)
            return start

    def forget(self, server_id: str) -> None:
        with self._lock:
            self._ranges.pop(server_id, None)
