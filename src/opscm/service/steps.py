"""Handlers written as steps: a generator yields the work that may block (a signature) and is
sent its result, or thrown its error. :func:`run_steps` runs them on a request thread; the ASGI
app drives them from the event loop with :func:`resume`, the blocking work in a thread."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Generator
from typing import Any

# Steps of a handler: each yielded callable may block; the generator is sent its result (or
# thrown its exception) and returns the handler's result.
Steps = Generator[Callable[[], Any], Any, dict]


@dataclasses.dataclass(frozen=True)
class Brief:
    """A step whose work is short and bounded (one signature: ~2 ms with a 4096-bit CA), which
    the event loop may run in place when no other request would wait for it. A step that is
    not marked (a CRL, which grows with the revocations) always runs in a thread."""

    work: Callable[[], Any]

    def __call__(self) -> Any:
        return self.work()


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
