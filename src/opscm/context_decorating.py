"""A context-manager factory used as a decorator: the target runs inside a fresh context each time."""

from __future__ import annotations

import functools
import inspect
import unittest
from collections.abc import Callable
from contextlib import AbstractContextManager

NewContext = Callable[[], AbstractContextManager]


def decorate(target, new_context: NewContext):
    """Wrap a function, a coroutine function or a class (its tests) so each run gets its own context."""
    if isinstance(target, type):
        return _decorate_class(target, new_context)
    if inspect.iscoroutinefunction(target):
        # A plain wrapper would leave the context before the coroutine even starts.
        @functools.wraps(target)
        async def run_coroutine(*args, **kwargs):
            with new_context():
                return await target(*args, **kwargs)

        return run_coroutine

    @functools.wraps(target)
    def run(*args, **kwargs):
        with new_context():
            return target(*args, **kwargs)

    return run


def _decorate_class(cls: type, new_context: NewContext) -> type:
    if issubclass(cls, unittest.TestCase):
        # TestCase.run calls setUp, the test, tearDown and the cleanups: one context for all of them,
        # as they share one instance.
        cls.run = decorate(cls.run, new_context)
        return cls
    for name, value in list(vars(cls).items()):
        if name.startswith("test") and inspect.isfunction(value):
            setattr(cls, name, decorate(value, new_context))
    return cls
