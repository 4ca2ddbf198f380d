"""`opscm serve` as a process: first start, credentials, restart, clean stop."""

import signal
import sqlite3
import stat

import pytest

from opscm.store.revisions import HEAD_REVISION
from tests.support.server import start_server


def _mode(path):
    return stat.S_IMODE(path.stat().st_mode)


def test_first_start_creates_database_and_private_credentials(opscm):
    assert opscm.url.startswith("http://127.0.0.1:")
    assert any("admin credentials written to" in line for line in opscm.output)
    assert _mode(opscm.credentials_file) == 0o600
    assert _mode(opscm.data_dir / "master.key") == 0o600
    assert _mode(opscm.data_dir / "opscm.db") == 0o600
    text = opscm.credentials_file.read_text()
    assert text.startswith("[default]\n") and "aws_secret_access_key = " in text
    with sqlite3.connect(opscm.data_dir / "opscm.db") as db:
        assert db.execute("select version_num from alembic_version").fetchone() == (HEAD_REVISION,)  # Alembic's head: see test_schema_head
        assert db.execute("pragma journal_mode").fetchone() == ("wal",)


def test_secrets_are_encrypted_at_rest(opscm):
    _, secret = opscm.access_key
    with sqlite3.connect(opscm.data_dir / "opscm.db") as db:
        (sealed,) = db.execute("select secret_enc from access_keys").fetchone()
    assert secret.encode() not in sealed


def test_secret_never_logged(opscm, client):
    client.describe_servers()
    _, secret = opscm.access_key
    assert not any(secret in line for line in opscm.output)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_restart_keeps_state_and_stops_cleanly(tmp_path, sig):
    first = start_server(tmp_path, "--ca-key-bits", "2048")
    key = first.access_key
    first.client().create_server(
        ServerName="kept",
        Engine="ChefAutomate",
        InstanceProfileArn="arn:aws:iam::123456789012:instance-profile/p",
        InstanceType="m5.large",
        ServiceRoleArn="arn:aws:iam::123456789012:role/r",
    )
    assert first.stop(sig) == 0
    second = start_server(tmp_path, "--ca-key-bits", "2048")
    try:
        assert second.access_key == key, "credentials must not be regenerated"
        assert not any("admin credentials written" in line for line in second.output)
        names = [s["ServerName"] for s in second.client().describe_servers()["Servers"]]
        assert names == ["kept"]
    finally:
        assert second.stop() == 0
