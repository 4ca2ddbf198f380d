"""Request throttling per account: a token bucket, as AWS limited OpsWorks CM (5 requests/s, bursts of 10).

Each account has a bucket of ``burst`` tokens refilled at ``rate`` tokens a second; a request
takes one token or is answered ``ThrottlingException``. The buckets live in the process: with
several replicas each one throttles on its own.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

DEFAULT_RATE = 5.0
DEFAULT_BURST = 10


class TokenBuckets:
    def __init__(self, rate: float = DEFAULT_RATE, burst: int = DEFAULT_BURST, now: Callable[[], float] = time.monotonic):
        if rate <= 0 or burst < 1:
            raise ValueError("the throttle rate must be positive and the burst at least 1")
        self.rate = rate
        self.burst = burst
        self._now = now
        self._lock = threading.Lock()
        # account -> (tokens left, when they were counted)
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, account_id: str) -> bool:
        """Take one token of the account's bucket; False when it is empty."""
        with self._lock:
            now = self._now()
            tokens, counted = self._buckets.get(account_id, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - counted) * self.rate)
            taken = tokens >= 1.0
            self._buckets[account_id] = (tokens - 1.0 if taken else tokens, now)
            return taken
