"""Self-tests of tests/support/puppetserver.py that need no running puppetserver."""

from __future__ import annotations

import pytest

from tests.support import puppetserver
from tests.support.puppetserver import Puppetserver, PuppetserverError, free_port, prepare_ca_mode


def test_missing_puppetserver_skips_with_the_reason(monkeypatch):
    monkeypatch.setattr(puppetserver, "missing_puppetserver", lambda: "java is not installed")
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="java is not installed"):
        puppetserver.unavailable()


def test_missing_puppetserver_fails_under_ci(monkeypatch):
    monkeypatch.setattr(puppetserver, "missing_puppetserver", lambda: "java is not installed")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="puppetserver tests cannot run: java is not installed"):
        puppetserver.unavailable()


def test_a_puppetserver_that_fails_to_start_reports_its_logs(tmp_path):
    puppetserver.unavailable()
    port = free_port()
    layout = prepare_ca_mode(tmp_path, port)
    (layout.confd / "puppetserver.conf").write_text("jruby-puppet: { this is not HOCON\n")
    # Dies while reading its configuration (~10 s), long before it needs a big heap.
    server = Puppetserver(layout, port, "ca", "localhost", heap="96m")
    server.launch()
    try:
        with pytest.raises(PuppetserverError) as failed:
            server.wait_ready(timeout=120)
    finally:
        server.stop()
    message = str(failed.value)
    assert message.startswith("puppetserver exited with status")
    assert str(layout.console_file) in message  # the logs are in the message...
    assert "puppetlabs.trapperkeeper.config" in message  # ...with the reason


def test_one_external_server_per_session(tmp_path, monkeypatch):
    starts = puppetserver._Starts()
    files = puppetserver.ExternalCaFiles("localhost", tmp_path / "a", tmp_path / "b", tmp_path / "c", tmp_path / "d")
    monkeypatch.setattr(starts, "external", object())  # as if one were running from `files`
    monkeypatch.setattr(starts, "external_files", files.resolved())
    assert starts.begin_external(files) is starts.external
    other = puppetserver.ExternalCaFiles("localhost", tmp_path / "x", tmp_path / "b", tmp_path / "c", tmp_path / "d")
    with pytest.raises(PuppetserverError, match="one external-CA puppetserver per test session"):
        starts.begin_external(other)
