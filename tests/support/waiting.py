"""Waiting in a test for something another thread or process does: polled, never timed."""

from __future__ import annotations

import time


def wait_for(condition, timeout: float = 30.0, what: str = "the condition", pause: float = 0.05):
    """``condition()``'s first true value; fails the test if none comes within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not (found := condition()):
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout}s"
        time.sleep(pause)
    return found
