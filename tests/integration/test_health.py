"""Health is checked, not decreed: a server whose CA key breaks turns UNHEALTHY, and back."""

import sqlite3

import pytest
from botocore.exceptions import ClientError

from tests.support.requests import create_server_params, make_csr
from tests.support.server import start_server, wait_for_status


@pytest.fixture(scope="module")
def quick_health(tmp_path_factory):
    server = start_server(tmp_path_factory.mktemp("health"), "--ca-key-bits", "2048", "--health-interval", "0.3")
    yield server
    server.stop()


def test_broken_ca_key_makes_the_server_unhealthy_and_repair_heals_it(quick_health):
    client = quick_health.client()
    client.create_server(**create_server_params("ill", "Puppet"))
    wait_for_status(client, "ill")
    db = quick_health.data_dir / "opscm.db"
    with sqlite3.connect(db) as connection:
        (good_key,) = connection.execute("select key_enc from puppet_cas").fetchone()
        connection.execute("update puppet_cas set key_enc = ?", (b"\x01" + b"\x00" * 40,))
    server = wait_for_status(client, "ill", "UNHEALTHY", timeout=10)
    assert "CA key" in server["StatusReason"]
    with pytest.raises(ClientError) as caught:
        client.associate_node(ServerName="ill", NodeName="n", EngineAttributes=[{"Name": "PUPPET_NODE_CSR", "Value": make_csr("n")}])
    assert caught.value.response["Error"]["Code"] == "InvalidStateException"
    with sqlite3.connect(db) as connection:
        connection.execute("update puppet_cas set key_enc = ?", (good_key,))
    wait_for_status(client, "ill", "HEALTHY", timeout=10)
    messages = [e["Message"] for e in client.describe_events(ServerName="ill")["ServerEvents"]]
    assert "HEALTHY again" in messages[0] and "UNHEALTHY" in messages[1]
