"""A missing peer skips a test locally, with its reason, and fails it under CI."""

import pytest

from tests.support.requirements import require


def test_a_met_requirement_passes(monkeypatch):
    monkeypatch.setenv("CI", "1")
    require(True, "anything")


def test_a_missing_peer_skips_locally_with_the_reason(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="needs the frobnicator"):
        require(None, "the frobnicator")


def test_a_missing_peer_fails_under_ci(monkeypatch):
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="needs the frobnicator, which CI must provide"):
        require("", "the frobnicator")
