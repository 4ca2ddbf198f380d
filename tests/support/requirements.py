"""What some tests need from the machine: PostgreSQL, Debian's puppet agent, the aws CLI, openssl.

Locally, a test whose peer is missing is skipped, with the reason. Under CI (the ``CI``
environment variable set, as .ci/run does), it fails instead: a CI run that skips them quietly
tests nothing. Every skip of the suite goes through :func:`require`.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest


def in_ci() -> bool:
    return bool(os.environ.get("CI"))


def require(condition: object, what: str) -> None:
    """Go on if *condition* holds; else fail under CI, skip otherwise (also at module level)."""
    if condition:
        return
    if in_ci():
        pytest.fail(f"needs {what}, which CI must provide (CI={os.environ['CI']!r})", pytrace=False)
    pytest.skip(f"needs {what}", allow_module_level=True)


def aws_cli() -> str | None:
    """The aws CLI of this virtualenv (PyPI awscli), else one on the PATH."""
    beside = Path(sys.executable).with_name("aws")
    return str(beside) if beside.exists() else shutil.which("aws")


def require_aws_cli() -> str:
    found = aws_cli()
    require(found, "the aws CLI (pip install awscli)")
    return found


def require_openssl() -> None:
    require(shutil.which("openssl"), "the openssl command")


def require_puppet_agent() -> None:
    from .puppet_agent import puppet_available

    require(puppet_available(), "Debian's puppet agent (apt-get install puppet-agent, Puppet 7.x)")


# Tests marked with these need the peer (see pytest_runtest_setup in tests/conftest.py).
MARKED = {"puppet": require_puppet_agent, "awscli": require_aws_cli, "openssl": require_openssl}


def require_marked(item: pytest.Item) -> None:
    for marker, check in MARKED.items():
        if item.get_closest_marker(marker):
            check()
