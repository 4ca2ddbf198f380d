"""A Chef server backed by a real Chef server (goiardi, authentication on): AssociateNode really
registers the node's key there, so the node's own signed requests are accepted; after
DisassociateNode they are refused. opscm serves with ``--config`` naming the backend."""

import contextlib
import signal
import time
import uuid

import pytest
from botocore.exceptions import ClientError
from cryptography.hazmat.primitives import serialization

from opscm.engines.chef_api import ChefApi
from tests.support.awscli import cli_home
from tests.support.requests import create_server_params, public_pem, rsa_key
from tests.support.server import start_server, wait_for_status
from tests.support.userdata import export_userdata, run_script, sandbox_env

BACKEND = "corp-chef"


def _serve(goiardi, tmp_path_factory, health_interval: str):
    root = tmp_path_factory.mktemp("chef-backend")
    config = root / "opscm.toml"
    config.write_text(
        f"""
[backends.{BACKEND}]
kind = "chef-server"
url = "{goiardi.url}"
client_name = "{goiardi.admin_name}"
client_key = "{goiardi.admin_key_path}"
timeout = 3

[backends.broken-chef]
kind = "chef-server"
url = "{goiardi.url}"
client_name = "{goiardi.admin_name}"
client_key = "{root / 'wrong.pem'}"
"""
    )
    wrong = rsa_key().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    (root / "wrong.pem").write_bytes(wrong)
    (root / "wrong.pem").chmod(0o600)
    return start_server(
        root / "data",
        "--config", str(config),
        "--health-interval", health_interval,
        "--backend-retry-seconds", "4",
        "--schedule-interval", "0",
    )


@pytest.fixture(scope="module")
def chef_opscm(goiardi, tmp_path_factory):
    server = _serve(goiardi, tmp_path_factory, "0.5")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def unwatched_opscm(goiardi, tmp_path_factory):
    """No health checks: its server stays HEALTHY while the backend is down."""
    server = _serve(goiardi, tmp_path_factory, "0")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def chef_client(chef_opscm):
    return chef_opscm.client()


@pytest.fixture(scope="module")
def backed_server(chef_client):
    name = f"chefb-{uuid.uuid4().hex[:6]}"
    chef_client.create_server(
        **create_server_params(name, "ChefAutomate", EngineAttributes=[{"Name": "OPSCM_BACKEND", "Value": BACKEND}])
    )
    yield wait_for_status(chef_client, name)
    chef_client.delete_server(ServerName=name)


def _node_key():
    key = rsa_key()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return pem, public_pem(key)


def _attributes(public=None):
    attributes = [{"Name": "CHEF_ORGANIZATION", "Value": "default"}]
    return attributes + ([{"Name": "CHEF_NODE_PUBLIC_KEY", "Value": public}] if public else [])


def _status(client, server, token):
    return client.describe_node_association_status(ServerName=server, NodeAssociationStatusToken=token)


def _as_node(goiardi, name, private_pem):
    return ChefApi(goiardi.url, name, private_pem)


def _error(call):
    with pytest.raises(ClientError) as caught:
        call()
    return caught.value.response["Error"]["Code"], caught.value.response["Error"]["Message"]


def test_the_server_is_the_backends(backed_server, goiardi):
    assert backed_server["Endpoint"] == "127.0.0.1"
    attributes = {a["Name"]: a["Value"] for a in backed_server["EngineAttributes"]}
    assert attributes["OPSCM_BACKEND"] == BACKEND
    assert attributes["OPSCM_CHEF_SERVER_URL"] == goiardi.url
    assert all(goiardi.admin_key().decode() not in v for v in attributes.values())


def test_node_key_is_accepted_by_the_chef_server_until_disassociated(chef_client, backed_server, goiardi):
    server, node = backed_server["ServerName"], f"node-{uuid.uuid4().hex[:6]}"
    private_pem, public = _node_key()
    before = _as_node(goiardi, node, private_pem).request("GET", "/nodes")
    assert before.status == 401, "an unknown key is refused by the Chef server"

    token = chef_client.associate_node(ServerName=server, NodeName=node, EngineAttributes=_attributes(public))[
        "NodeAssociationStatusToken"
    ]
    assert _status(chef_client, server, token)["NodeAssociationStatus"] == "SUCCESS", "final at the first poll"
    as_node = _as_node(goiardi, node, private_pem)
    assert as_node.request("GET", "/nodes").status == 200
    assert as_node.request("POST", "/nodes", {"name": node, "json_class": "Chef::Node", "chef_type": "node"}).status == 201

    token = chef_client.disassociate_node(ServerName=server, NodeName=node, EngineAttributes=_attributes())[
        "NodeAssociationStatusToken"
    ]
    assert _status(chef_client, server, token)["NodeAssociationStatus"] == "SUCCESS"
    assert as_node.request("GET", "/nodes").status == 401, "the key pair no longer opens the Chef server's API"
    admin = ChefApi(goiardi.url, goiardi.admin_name, goiardi.admin_key())
    assert admin.request("GET", f"/nodes/{node}").status == 404, "the node object is gone too"


def test_a_client_registered_with_another_key_is_not_taken(chef_client, backed_server, goiardi):
    server, node = backed_server["ServerName"], f"taken-{uuid.uuid4().hex[:6]}"
    admin = ChefApi(goiardi.url, goiardi.admin_name, goiardi.admin_key())
    first_private, first_public = _node_key()
    admin.create_client(node, first_public)  # registered on the Chef server without opscm
    _, other_public = _node_key()
    token = chef_client.associate_node(ServerName=server, NodeName=node, EngineAttributes=_attributes(other_public))[
        "NodeAssociationStatusToken"
    ]
    status = _status(chef_client, server, token)
    assert status["NodeAssociationStatus"] == "FAILED"
    assert _as_node(goiardi, node, first_private).request("GET", "/nodes").status == 200, "the owner keeps its key"
    events = chef_client.describe_events(ServerName=server)["ServerEvents"]
    assert any(f"node {node} failed" in e["Message"] and "another key" in e["Message"] for e in events)

    # The same key again converges (a repeated association after a crash, say).
    token = chef_client.associate_node(ServerName=server, NodeName=node + "x", EngineAttributes=_attributes(first_public))
    assert _status(chef_client, server, token["NodeAssociationStatusToken"])["NodeAssociationStatus"] == "SUCCESS"
    admin.create_client(node + "y", first_public)
    token = chef_client.associate_node(ServerName=server, NodeName=node + "y", EngineAttributes=_attributes(first_public))
    assert _status(chef_client, server, token["NodeAssociationStatusToken"])["NodeAssociationStatus"] == "SUCCESS"


def test_the_admin_client_is_never_a_node(chef_client, backed_server, goiardi):
    _, public = _node_key()
    code, message = _error(lambda: chef_client.associate_node(
        ServerName=backed_server["ServerName"], NodeName=goiardi.admin_name, EngineAttributes=_attributes(public)
    ))
    assert code == "ValidationException" and "reserved" in message


def test_the_backends_own_clients_are_never_disassociated(chef_client, backed_server, goiardi):
    """A name reserved for the backend (its validator, opscm's admin identity) is refused both
    ways: DisassociateNode of it deleted the Chef server's own client."""
    admin = ChefApi(goiardi.url, goiardi.admin_name, goiardi.admin_key())
    assert admin.request("GET", "/clients/chef-validator").status == 200
    for name in ("chef-validator", goiardi.admin_name):
        code, message = _error(lambda: chef_client.disassociate_node(
            ServerName=backed_server["ServerName"], NodeName=name, EngineAttributes=_attributes()
        ))
        assert code == "ValidationException" and "reserved" in message
    assert admin.request("GET", "/clients/chef-validator").status == 200
    assert admin.request("GET", "/nodes").status == 200, "opscm's admin identity still works"


def test_backend_choice_is_checked(chef_client):
    for backend, engine, fragment in (("nope", "ChefAutomate", "not a backend"), (BACKEND, "Puppet", "serves ChefAutomate")):
        code, message = _error(lambda: chef_client.create_server(**create_server_params(
            f"x-{uuid.uuid4().hex[:6]}", engine, EngineAttributes=[{"Name": "OPSCM_BACKEND", "Value": backend}]
        )))
        assert code == "ValidationException" and fragment in message


def test_refused_credentials_make_the_server_unhealthy(chef_client):
    name = f"chefw-{uuid.uuid4().hex[:6]}"
    chef_client.create_server(
        **create_server_params(name, "ChefAutomate", EngineAttributes=[{"Name": "OPSCM_BACKEND", "Value": "broken-chef"}])
    )
    try:
        server = wait_for_status(chef_client, name, "UNHEALTHY")
        assert "HTTP 401" in server["StatusReason"]
    finally:
        chef_client.delete_server(ServerName=name)


def test_a_stopped_chef_server_fails_the_association_then_the_server_heals(
    chef_client, backed_server, unwatched_opscm, goiardi
):
    quiet = unwatched_opscm.client()
    quiet_server = f"chefq-{uuid.uuid4().hex[:6]}"
    quiet.create_server(
        **create_server_params(quiet_server, "ChefAutomate", EngineAttributes=[{"Name": "OPSCM_BACKEND", "Value": BACKEND}])
    )
    wait_for_status(quiet, quiet_server)
    server, node = backed_server["ServerName"], f"late-{uuid.uuid4().hex[:6]}"
    _, public = _node_key()
    with goiardi.stopped():
        token = quiet.associate_node(ServerName=quiet_server, NodeName=node, EngineAttributes=_attributes(public))[
            "NodeAssociationStatusToken"
        ]
        assert _status(quiet, quiet_server, token)["NodeAssociationStatus"] == "IN_PROGRESS"
        unhealthy = wait_for_status(chef_client, server, "UNHEALTHY", timeout=30)
        assert "refused the connection" in unhealthy["StatusReason"]
        code, _ = _error(lambda: chef_client.associate_node(ServerName=server, NodeName=node, EngineAttributes=_attributes(public)))
        assert code == "InvalidStateException", "an UNHEALTHY server takes no association"
        deadline = time.monotonic() + 60
        while _status(quiet, quiet_server, token)["NodeAssociationStatus"] == "IN_PROGRESS":
            assert time.monotonic() < deadline, "a backend that stays down ends the association"
            time.sleep(0.5)
        assert _status(quiet, quiet_server, token)["NodeAssociationStatus"] == "FAILED"
        messages = [e["Message"] for e in quiet.describe_events(ServerName=quiet_server)["ServerEvents"]]
        assert any(f"AssociateNode for node {node} failed" in m and "gave up" in m for m in messages), messages
        assert any("opscm keeps trying" in m for m in messages)
        messages = [e["Message"] for e in chef_client.describe_events(ServerName=server)["ServerEvents"]]
        assert any("is UNHEALTHY" in m for m in messages)
    wait_for_status(chef_client, server, "HEALTHY", timeout=30)
    # The name is free again: the node can try once more.
    token = quiet.associate_node(ServerName=quiet_server, NodeName=node, EngineAttributes=_attributes(public))
    assert _status(quiet, quiet_server, token["NodeAssociationStatusToken"])["NodeAssociationStatus"] == "SUCCESS"
    quiet.delete_server(ServerName=quiet_server)


def test_exported_user_data_makes_a_node_the_chef_server_accepts(chef_opscm, chef_client, backed_server, goiardi, tmp_path):
    server, node = backed_server["ServerName"], f"ud-{uuid.uuid4().hex[:6]}"
    config = tmp_path / "etc-chef"
    env = sandbox_env(cli_home(tmp_path), chef_opscm, OPSCM_NODE_NAME=node, OPSCM_CHEF_CONFIG_DIR=str(config))
    since = len(chef_opscm.output)
    result = run_script(export_userdata(chef_client, server), env, tmp_path)
    assert result.returncode == 0, result.stderr
    assert chef_opscm.operations_since(since)["DescribeNodeAssociationStatus"] == 1, "final at the waiter's first call"
    client_rb = (config / "client.rb").read_text()
    assert f"chef_server_url '{goiardi.url}'" in client_rb
    # What chef-client would do first with client.rb and client.pem: signed requests as the node.
    as_node = _as_node(goiardi, node, (config / "client.pem").read_bytes())
    assert as_node.request("GET", "/nodes").status == 200
    assert as_node.request("POST", "/nodes", {"name": node, "json_class": "Chef::Node", "chef_type": "node"}).status == 201
    with contextlib.suppress(Exception):
        chef_client.disassociate_node(ServerName=server, NodeName=node, EngineAttributes=_attributes())
    assert as_node.request("GET", "/nodes").status == 401


def test_a_restart_in_the_middle_finishes_the_association(goiardi, tmp_path_factory):
    """Killed while the backend was down: the next start takes the persisted job up again."""
    first = _serve(goiardi, tmp_path_factory, "0")
    client = first.client()
    name, node = f"chefr-{uuid.uuid4().hex[:6]}", f"restart-{uuid.uuid4().hex[:6]}"
    client.create_server(
        **create_server_params(name, "ChefAutomate", EngineAttributes=[{"Name": "OPSCM_BACKEND", "Value": BACKEND}])
    )
    wait_for_status(client, name)
    private_pem, public = _node_key()
    with goiardi.stopped():
        token = client.associate_node(ServerName=name, NodeName=node, EngineAttributes=_attributes(public))[
            "NodeAssociationStatusToken"
        ]
        assert _status(client, name, token)["NodeAssociationStatus"] == "IN_PROGRESS"
        first.stop(signal.SIGKILL)
    again = start_server(first.data_dir, "--config", str(first.data_dir.parent / "opscm.toml"), "--health-interval", "0")
    try:
        client = again.client()
        deadline = time.monotonic() + 60
        while _status(client, name, token)["NodeAssociationStatus"] == "IN_PROGRESS":
            assert time.monotonic() < deadline, "the restarted opscm finishes what the killed one began"
            time.sleep(0.5)
        assert _status(client, name, token)["NodeAssociationStatus"] == "SUCCESS"
        assert _as_node(goiardi, node, private_pem).request("GET", "/nodes").status == 200
    finally:
        again.stop()
