"""Server states and what each allows; work that outlives a request survives a restart; maintenance."""

from datetime import timedelta

import httpx
import pytest
from botocore.exceptions import ClientError
from cryptography import x509

from opscm.mock import OpsWorksCMMock
from tests.support.clock import FakeClock
from tests.support.mock_client import mock_client, set_server_status
from tests.support.requests import create_server_params, make_csr


def _error(call):
    with pytest.raises(ClientError) as caught:
        call()
    return caught.value.response["Error"]["Code"], caught.value.response["Error"]["Message"]


def _associate(client, server, node):
    return client.associate_node(
        ServerName=server, NodeName=node, EngineAttributes=[{"Name": "PUPPET_NODE_CSR", "Value": make_csr(node)}]
    )


STATE_RULES = [
    # (state, operation, allowed)
    ("UNHEALTHY", "associate", False),
    ("RUNNING", "associate", False),
    ("UNDER_MAINTENANCE", "associate", False),
    ("HEALTHY", "maintenance", True),
    ("UNHEALTHY", "maintenance", True),
    ("BACKING_UP", "maintenance", False),
    ("CREATING", "maintenance", False),
    ("HEALTHY", "engine-update", True),
    ("UNHEALTHY", "engine-update", True),
    ("MODIFYING", "engine-update", False),
    ("RESTORING", "engine-update", False),
    ("DELETING", "delete", False),
    ("FAILED", "delete", True),
]


@pytest.mark.parametrize("state, operation, allowed", STATE_RULES)
def test_states_allow_what_the_documentation_says(state, operation, allowed):
    with OpsWorksCMMock(run_jobs=False) as mock:
        client = mock_client(mock)
        client.create_server(**create_server_params("s1", "Puppet"))
        set_server_status(mock, "s1", state)
        calls = {
            "associate": lambda: _associate(client, "s1", "n1"),
            "maintenance": lambda: client.start_maintenance(ServerName="s1"),
            "engine-update": lambda: client.update_server_engine_attributes(
                ServerName="s1", AttributeName="PUPPET_ADMIN_PASSWORD", AttributeValue="N3w#Passw0rd"
            ),
            "delete": lambda: client.delete_server(ServerName="s1"),
        }
        if allowed:
            calls[operation]()
        else:
            code, message = _error(calls[operation])
            assert code == "InvalidStateException"
            assert state in message


def test_pending_creation_resumes_after_restart(tmp_path):
    with OpsWorksCMMock(run_jobs=False, data_dir=tmp_path) as mock:
        mock_client(mock).create_server(**create_server_params("resumed", "Puppet"))
    # A new process on the same data dir picks the persisted job up.
    with OpsWorksCMMock(data_dir=tmp_path) as mock:
        mock.wait_for_jobs()
        server = mock_client(mock).describe_servers(ServerName="resumed")["Servers"][0]
        assert server["Status"] == "HEALTHY"


def test_maintenance_republishes_the_crl_and_prunes_expired_certificates():
    clock = FakeClock()
    with OpsWorksCMMock(clock=clock) as mock:
        client = mock_client(mock)
        client.create_server(**create_server_params("maint", "Puppet"))
        mock.wait_for_jobs()
        _associate(client, "maint", "old-node")
        client.disassociate_node(ServerName="maint", NodeName="old-node")

        def crl():
            server = client.describe_servers(ServerName="maint")["Servers"][0]
            url = next(a["Value"] for a in server["EngineAttributes"] if a["Name"] == "PUPPET_API_CRL_URL")
            return x509.load_pem_x509_crl(_fetch(mock, url))

        before = crl()
        assert len(list(before)) == 1
        clock.advance(timedelta(days=6 * 365))  # the revoked certificate has expired
        server = client.start_maintenance(ServerName="maint")["Server"]
        assert server["Status"] == "UNDER_MAINTENANCE"
        mock.wait_for_jobs()
        server = client.describe_servers(ServerName="maint")["Servers"][0]
        assert (server["Status"], server["MaintenanceStatus"]) == ("HEALTHY", "SUCCESS")
        after = crl()
        number = lambda c: c.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number  # noqa: E731
        assert number(after) > number(before)
        assert len(list(after)) == 0, "expired certificates leave the CRL"
        messages = [e["Message"] for e in client.describe_events(ServerName="maint")["ServerEvents"]]
        assert any("Pruned 1 expired" in m for m in messages)
        assert any("Republished the CRL" in m for m in messages)


def _fetch(mock, url):
    # The mock serves CA documents through its ASGI app, without a socket.
    path = url.split("://", 1)[1].split("/", 1)[1]
    transport = httpx.ASGITransport(app=mock.app.asgi)

    async def get():
        async with httpx.AsyncClient(transport=transport, base_url="http://opscm.local") as http:
            return (await http.get("/" + path)).content

    import asyncio

    return asyncio.run(get())


def test_engine_attribute_updates():
    with OpsWorksCMMock() as mock:
        client = mock_client(mock)
        client.create_server(**create_server_params("chef1", "ChefAutomate"))
        client.create_server(**create_server_params("pup1", "Puppet"))
        mock.wait_for_jobs()
        server = client.update_server_engine_attributes(ServerName="chef1", AttributeName="CHEF_PIVOTAL_KEY")["Server"]
        attributes = {a["Name"]: a["Value"] for a in server["EngineAttributes"]}
        assert attributes["CHEF_PIVOTAL_KEY"].startswith("-----BEGIN RSA PRIVATE KEY-----")
        assert server["Status"] == "HEALTHY"
        described = client.describe_servers(ServerName="chef1")["Servers"][0]
        assert "CHEF_PIVOTAL_KEY" not in {a["Name"] for a in described["EngineAttributes"]}
        code, message = _error(
            lambda: client.update_server_engine_attributes(ServerName="chef1", AttributeName="PUPPET_ADMIN_PASSWORD")
        )
        assert code == "ValidationException" and "CHEF_PIVOTAL_KEY" in message
        assert client.describe_servers(ServerName="chef1")["Servers"][0]["Status"] == "HEALTHY"
        code, _ = _error(
            lambda: client.update_server_engine_attributes(
                ServerName="pup1", AttributeName="PUPPET_ADMIN_PASSWORD", AttributeValue="weak"
            )
        )
        assert code == "ValidationException"
        client.update_server_engine_attributes(
            ServerName="pup1", AttributeName="PUPPET_ADMIN_PASSWORD", AttributeValue="N3w#Passw0rd"
        )


def test_update_server_settings():
    with OpsWorksCMMock() as mock:
        client = mock_client(mock)
        client.create_server(**create_server_params("upd", "ChefAutomate"))
        server = client.update_server(
            ServerName="upd",
            PreferredMaintenanceWindow="Tue:03:30",
            PreferredBackupWindow="04:00",
            BackupRetentionCount=5,
            DisableAutomatedBackup=True,
        )["Server"]
        assert (server["PreferredMaintenanceWindow"], server["PreferredBackupWindow"]) == ("Tue:03:30", "04:00")
        assert (server["BackupRetentionCount"], server["DisableAutomatedBackup"]) == (5, True)
        assert client.describe_servers(ServerName="upd")["Servers"][0]["BackupRetentionCount"] == 5
        assert _error(lambda: client.update_server(ServerName="upd", PreferredBackupWindow="25:00"))[0] == (
            "ValidationException"
        )
        assert _error(lambda: client.update_server(ServerName="upd", BackupRetentionCount=0))[0] == "ValidationException"


def test_scheduled_maintenance_runs_once_per_window():
    from datetime import datetime, timezone

    clock = FakeClock(datetime(2026, 11, 30, 8, 10, tzinfo=timezone.utc))  # a Monday
    with OpsWorksCMMock(clock=clock) as mock:
        client = mock_client(mock)
        client.create_server(
            **create_server_params(
                "sched", "Puppet", PreferredMaintenanceWindow="Mon:08:00", DisableAutomatedBackup=True
            )
        )
        mock.wait_for_jobs()
        assert mock.tick() == 1
        mock.wait_for_jobs()
        assert mock.tick() == 0, "once per window"
        clock.advance(timedelta(days=1))  # Tuesday: outside the weekly window
        assert mock.tick() == 0
        clock.advance(timedelta(days=6))  # next Monday
        assert mock.tick() == 1
        mock.wait_for_jobs()
        server = client.describe_servers(ServerName="sched")["Servers"][0]
        assert server["MaintenanceStatus"] == "SUCCESS"


def test_update_interrupted_by_a_crash_does_not_stay_modifying(tmp_path):
    with OpsWorksCMMock(data_dir=tmp_path) as mock:
        mock_client(mock).create_server(**create_server_params("crashy", "ChefAutomate"))
        mock.wait_for_jobs()
        set_server_status(mock, "crashy", "MODIFYING")  # as a process killed between the two transactions leaves it
    with OpsWorksCMMock(data_dir=tmp_path) as mock:
        client = mock_client(mock)
        assert client.describe_servers(ServerName="crashy")["Servers"][0]["Status"] == "HEALTHY"
        assert "interrupted" in client.describe_events(ServerName="crashy")["ServerEvents"][0]["Message"]
