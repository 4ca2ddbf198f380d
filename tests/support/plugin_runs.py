"""Inner pytest runs (pytester) with opscm's pytest plugin loaded the way this environment allows."""

from __future__ import annotations

from importlib.metadata import entry_points

import pytest

import opscm.mock  # noqa: F401  imported here, so in-process runs share the one mock_routing module

PLUGIN = "opscm.pytest_plugin"


def plugin_installed() -> bool:
    """True once opscm is installed with its pytest11 entry point (``pip install -e .``)."""
    return any(entry.value == PLUGIN for entry in entry_points(group="pytest11"))


def run_with_plugin(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    # Installed: pytest loads the plugin by its entry point, as for users. From a source tree on
    # PYTHONPATH it is not installed: name it (naming it as well would register it twice).
    load = () if plugin_installed() else ("-p", PLUGIN)
    return pytester.runpytest(*load, "-p", "no:cacheprovider", *args)
