"""Real peers (goiardi, ruby's mixlib-authentication) are installed by scripts/test. When one is
missing, CI must fail loudly; a developer's machine skips with the reason, never in silence."""

from __future__ import annotations

import os

import pytest


def missing_peer(reason: str):
    """Fail under CI (the environment promised the peer), skip elsewhere. Never returns."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so this is an error: run scripts/test to install it)", pytrace=False)
    pytest.skip(reason)
