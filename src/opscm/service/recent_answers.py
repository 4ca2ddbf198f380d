"""The final outcome of this process's own node changes, kept for the poll that follows them.

A node that associates polls DescribeNodeAssociationStatus at once (AWS's user data, the
``node-associated`` waiter), usually on the same keep-alive connection, so on the same worker.
A local engine's change is final when its transaction commits, and its row never changes
after that; only its server's deletion (or retention, days later) removes it. So the worker
keeps the outcome it just wrote for ``ttl`` seconds and answers that poll from it, once, without
a read of the store. Elsewhere (another worker, a later poll) the store answers.

Invalidation: a server deleted by this process forgets its outcomes (``forget_server``); one
deleted by another worker or replica may still have its outcomes given here for up to ``ttl``
seconds, as its cached server row may be (service.server_cache).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from opscm.domain.associations import Association

# As long as a cached server row is trusted (service.server_cache).
TTL_SECONDS = 2.0
# Outcomes kept at most: 2 s of a storm of 1,000 associations/s (a Puppet one holds its ~2 KB certificate).
CAPACITY = 2048


class RecentAnswers:
    def __init__(self, ttl: float = TTL_SECONDS, capacity: int = CAPACITY, monotonic: Callable[[], float] = time.monotonic):
        self._ttl = ttl
        self._capacity = capacity
        self._monotonic = monotonic
        self._lock = threading.Lock()
        # token hash -> (when it expires, the outcome), oldest first
        self._kept: dict[str, tuple[float, Association]] = {}

    def put(self, association: Association) -> None:
        """Keep a committed, final outcome."""
        now = self._monotonic()
        with self._lock:
            kept = self._kept
            kept[association.token_hash] = (now + self._ttl, association)
            # Oldest first: drop what expired or is over the capacity.
            while kept:
                oldest = next(iter(kept))
                if len(kept) <= self._capacity and kept[oldest][0] > now:
                    break
                del kept[oldest]

    def take(self, token_hash: str) -> Association | None:
        """The outcome of ``token_hash`` if this process made it less than ``ttl`` seconds ago,
        given once (a later poll reads the store)."""
        with self._lock:
            kept = self._kept.pop(token_hash, None)
        if kept is None or kept[0] <= self._monotonic():
            return None
        return kept[1]

    def forget_server(self, server_id: str) -> None:
        with self._lock:
            for token_hash in [token for token, (_, kept) in self._kept.items() if kept.server_id == server_id]:
                del self._kept[token_hash]
