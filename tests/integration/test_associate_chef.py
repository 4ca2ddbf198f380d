"""AssociateNode / DisassociateNode for Chef: the node's public key is registered as a client."""

import sqlite3
import subprocess

import pytest
from botocore.exceptions import ClientError

from tests.support.requests import public_pem, rsa_key
from tests.support.requirements import require_openssl


def _registered_key(opscm, node):
    with sqlite3.connect(opscm.data_dir / "opscm.db") as db:
        row = db.execute("select public_key_pem from chef_clients where name = ?", (node,)).fetchone()
    return row[0] if row else None


def _openssl_public_key(tmp_path, bits=2048):
    # Exactly the node side of AWS's user data: openssl genrsa, then openssl rsa -pubout.
    require_openssl()
    key = tmp_path / "client.pem"
    subprocess.run(["openssl", "genrsa", "-out", str(key), str(bits)], check=True, capture_output=True)
    return subprocess.run(["openssl", "rsa", "-in", str(key), "-pubout"], check=True, capture_output=True, text=True).stdout


def _error(call):
    with pytest.raises(ClientError) as caught:
        call()
    return caught.value.response["Error"]["Code"], caught.value.response["Error"]["Message"]


@pytest.mark.parametrize("org_name, key_name", [
    ("CHEF_ORGANIZATION", "CHEF_NODE_PUBLIC_KEY"),
    ("CHEF_AUTOMATE_ORGANIZATION", "CHEF_AUTOMATE_NODE_PUBLIC_KEY"),
])
def test_associate_registers_the_key(opscm, client, chef_server, tmp_path, org_name, key_name):
    node = f"node-{org_name.lower()[:10]}"
    pem = _openssl_public_key(tmp_path)
    response = client.associate_node(
        ServerName=chef_server,
        NodeName=node,
        EngineAttributes=[{"Name": org_name, "Value": "default"}, {"Name": key_name, "Value": pem}],
    )
    assert set(response) == {"NodeAssociationStatusToken", "ResponseMetadata"}
    status = client.describe_node_association_status(
        ServerName=chef_server, NodeAssociationStatusToken=response["NodeAssociationStatusToken"]
    )
    assert status["NodeAssociationStatus"] == "SUCCESS"
    assert _registered_key(opscm, node).split() == pem.split()

    # Disassociation needs the organization and removes the client.
    assert _error(lambda: client.disassociate_node(ServerName=chef_server, NodeName=node))[0] == "ValidationException"
    token = client.disassociate_node(
        ServerName=chef_server, NodeName=node, EngineAttributes=[{"Name": org_name, "Value": "default"}]
    )["NodeAssociationStatusToken"]
    status = client.describe_node_association_status(ServerName=chef_server, NodeAssociationStatusToken=token)
    assert status["NodeAssociationStatus"] == "SUCCESS"
    assert _registered_key(opscm, node) is None


def test_quoted_key_as_aws_user_data_sends_it(opscm, client, chef_server):
    pem = public_pem(rsa_key())
    client.associate_node(
        ServerName=chef_server,
        NodeName="quoted",
        EngineAttributes=[
            {"Name": "CHEF_ORGANIZATION", "Value": "default"},
            {"Name": "CHEF_NODE_PUBLIC_KEY", "Value": f"'{pem}'"},
        ],
    )
    assert _registered_key(opscm, "quoted").split() == pem.split()


def test_an_association_repeated_with_the_same_key_succeeds(opscm, client, chef_server):
    """The aws CLI sends AssociateNode again by itself when its answer was lost (a proxy's 5xx, a
    reset): the repeat, with the key in force, is answered as the first was, not refused."""
    attributes = [{"Name": "CHEF_ORGANIZATION", "Value": "default"}, {"Name": "CHEF_NODE_PUBLIC_KEY", "Value": public_pem(rsa_key())}]
    for _ in range(2):
        token = client.associate_node(ServerName=chef_server, NodeName="repeated", EngineAttributes=attributes)[
            "NodeAssociationStatusToken"
        ]
        status = client.describe_node_association_status(ServerName=chef_server, NodeAssociationStatusToken=token)
        assert status["NodeAssociationStatus"] == "SUCCESS"
    assert _registered_key(opscm, "repeated").split() == attributes[1]["Value"].split()
    events = client.describe_events(ServerName=chef_server)["ServerEvents"]
    assert not any("node repeated failed" in e["Message"] for e in events)


def test_a_name_in_force_is_refused_until_replacement_is_allowed(opscm, client, chef_server):
    attributes = lambda pem: [{"Name": "CHEF_ORGANIZATION", "Value": "default"}, {"Name": "CHEF_NODE_PUBLIC_KEY", "Value": pem}]  # noqa: E731
    old, new = public_pem(rsa_key()), public_pem(rsa_key())
    client.associate_node(ServerName=chef_server, NodeName="rekeyed", EngineAttributes=attributes(old))
    code, message = _error(
        lambda: client.associate_node(ServerName=chef_server, NodeName="rekeyed", EngineAttributes=attributes(new))
    )
    assert code == "ValidationException" and "already associated" in message and "OPSCM_NODE_NAME_POLICY" in message
    assert _registered_key(opscm, "rekeyed").split() == old.split(), "the node in force keeps its key"
    events = client.describe_events(ServerName=chef_server)["ServerEvents"]
    assert "AssociateNode for node rekeyed failed: Node rekeyed is already associated" in events[0]["Message"]

    client.update_server_engine_attributes(ServerName=chef_server, AttributeName="OPSCM_NODE_NAME_POLICY", AttributeValue="REPLACE")
    try:
        client.associate_node(ServerName=chef_server, NodeName="rekeyed", EngineAttributes=attributes(new))
        assert _registered_key(opscm, "rekeyed").split() == new.split()
    finally:
        client.update_server_engine_attributes(ServerName=chef_server, AttributeName="OPSCM_NODE_NAME_POLICY", AttributeValue="UNIQUE")
    described = client.describe_servers(ServerName=chef_server)["Servers"][0]["EngineAttributes"]
    assert {"Name": "OPSCM_NODE_NAME_POLICY", "Value": "UNIQUE"} in described


def test_disassociate_then_associate_always_works(opscm, client, chef_server):
    attributes = [{"Name": "CHEF_ORGANIZATION", "Value": "default"}]
    for _ in range(2):
        pem = public_pem(rsa_key())
        client.associate_node(ServerName=chef_server, NodeName="cycled", EngineAttributes=[*attributes, {"Name": "CHEF_NODE_PUBLIC_KEY", "Value": pem}])
        assert _registered_key(opscm, "cycled").split() == pem.split()
        client.disassociate_node(ServerName=chef_server, NodeName="cycled", EngineAttributes=attributes)
        assert _registered_key(opscm, "cycled") is None


@pytest.mark.parametrize(
    "attributes, fragment",
    [
        ([{"Name": "CHEF_NODE_PUBLIC_KEY", "Value": "x"}], "CHEF_ORGANIZATION"),
        ([{"Name": "CHEF_ORGANIZATION", "Value": "default"}], "CHEF_NODE_PUBLIC_KEY"),
        ([{"Name": "CHEF_ORGANIZATION", "Value": "acme"}, {"Name": "CHEF_NODE_PUBLIC_KEY", "Value": "x"}], "acme"),
        ([{"Name": "CHEF_ORGANIZATION", "Value": "default"}, {"Name": "CHEF_NODE_PUBLIC_KEY", "Value": "garbage"}], "CHEF_NODE_PUBLIC_KEY"),
        ([{"Name": "CHEF_ORGANIZATION", "Value": "default"}, {"Name": "CHEF_NODE_PUBLIC_KEY", "Value": public_pem(rsa_key(1024))}], "2048"),
        ([{"Name": "CHEF_ORGANIZATION", "Value": "default"}, {"Name": "PUPPET_NODE_CSR", "Value": "x"}], "PUPPET_NODE_CSR"),
    ],
)
def test_bad_attributes(client, chef_server, attributes, fragment):
    code, message = _error(
        lambda: client.associate_node(ServerName=chef_server, NodeName="bad", EngineAttributes=attributes)
    )
    assert code == "ValidationException"
    assert fragment in message


def test_disassociate_unknown_node(client, chef_server):
    code, _ = _error(
        lambda: client.disassociate_node(
            ServerName=chef_server, NodeName="never", EngineAttributes=[{"Name": "CHEF_ORGANIZATION", "Value": "default"}]
        )
    )
    assert code == "ResourceNotFoundException"
