"""Handlers written as steps: a generator yields the work that may block (a signature) and is
sent its result, or thrown its error. :func:`run_steps` runs them on a request thread; the ASGI
app drives them from the event loop with :func:`resume`, the blocking work in a thread."""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

# Steps of a handler: each yielded callable may block; the generator is sent its result (or
# thrown its exception) and returns the handler's result.
Steps = Generator[Callable[[], Any], Any, dict]


def resume(steps: Steps, value: Any = None, error: BaseException | None = None) -> tuple[Callable[[], Any] | None, Any]:
    """Resume the steps with the last step's value (or throw its error into them): ``(the next
    step, None)``, or ``(None, the handler's result)`` once they are done."""
    try:
        return (steps.throw(error) if error is not None else steps.send(value)), None
    except StopIteration as done:
        return None, done.value


def run_steps(steps: Steps) -> dict:
    """Run a handler's steps here, the blocking ones in place (on a request thread)."""
    step, result = resume(steps)
    while step is not None:
        try:
            value, error = step(), None
        except Exception as failure:  # noqa: BLE001 - thrown into the steps, which decide
            value, error = None, failure
        step, result = resume(steps, value, error)
    return result
