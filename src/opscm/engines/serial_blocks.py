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
        while True:
            serial = self._take(server_id)
            if serial is not None:
                return serial
            # Reserved without the lock: a reservation may wait for another writer, and whoever
            # holds no block must not wait on it (the event loop raises WouldWait instead).
            first = self._reserve(server_id, self._block)
            with self._lock:
                start, end = self._ranges.get(server_id, (0, 0))
                # Another thread's block, reserved after this one, may be in place already: this
                # one is dropped (gaps are harmless; a serial handed out twice, or a lower one after
                # a higher, is not).
                if start >= end or first > start:
                    self._ranges[server_id] = (first, first + self._block)

    def _take(self, server_id: str) -> int | None:
        with self._lock:
            start, end = self._ranges.get(server_id, (0, 0))
            if start >= end:
                return None
            self._ranges[server_id] = (start + 1, end)
            return start

    def forget(self, server_id: str) -> None:
        with self._lock:
            self._ranges.pop(server_id, None)
