"""CreateServer / DescribeServers / DeleteServer with the built-in engines."""

import re
import uuid

import httpx
import pytest
from botocore.exceptions import ClientError
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tests.support.requests import create_server_params, public_pem, rsa_key
from tests.support.server import wait_for_status, wait_until_gone


def _attrs(server):
    return {a["Name"]: a["Value"] for a in server.get("EngineAttributes", [])}


def _name(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _code(call):
    with pytest.raises(ClientError) as caught:
        call()
    return caught.value.response["Error"]["Code"], caught.value.response["Error"]["Message"]


def test_puppet_server_lifecycle(opscm, client):
    name = _name("puppet")
    created = client.create_server(**create_server_params(name, "Puppet", EngineVersion="2019"))["Server"]
    assert created["Status"] == "CREATING"
    assert created["EngineModel"] == "Monolithic" and created["EngineVersion"] == "2019"
    password = _attrs(created)["PUPPET_ADMIN_PASSWORD"]
    assert len(password) >= 8
    assert re.fullmatch(rf"arn:aws:opsworks-cm:us-east-1:\d{{12}}:server/{name}/[0-9a-f-]{{36}}", created["ServerArn"])
    assert created["Endpoint"] == "127.0.0.1"

    server = wait_for_status(client, name)
    attributes = _attrs(server)
    assert "PUPPET_ADMIN_PASSWORD" not in attributes, "the password is returned once only"
    ca = x509.load_pem_x509_certificate(attributes["PUPPET_API_CA_CERT"].encode())
    assert ca.subject.rfc4514_string() == f"CN=Puppet CA: {name}"
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert ca.public_key().key_size == 2048  # the test server runs with --ca-key-bits 2048

    crl_url = next(v for k, v in attributes.items() if "CRL" in k)
    response = httpx.get(crl_url)  # no credentials
    assert response.status_code == 200
    crl = x509.load_pem_x509_crl(response.content)
    assert crl.is_signature_valid(ca.public_key())
    assert httpx.get(attributes["PUPPET_API_CA_URL"]).text == attributes["PUPPET_API_CA_CERT"]

    client.delete_server(ServerName=name)
    assert _code(lambda: client.delete_server(ServerName=name))[0] in ("InvalidStateException", "ResourceNotFoundException")
    wait_until_gone(client, name)
    assert httpx.get(crl_url).status_code == 404, "the CA is destroyed with the server"


def test_chef_server_returns_pivotal_key_once(opscm, client):
    name = _name("chef")
    created = client.create_server(**create_server_params(name, "ChefAutomate"))["Server"]
    assert (created["EngineModel"], created["EngineVersion"]) == ("Single", "2")
    once = _attrs(created)
    private_key = serialization.load_pem_private_key(once["CHEF_AUTOMATE_PIVOTAL_KEY"].encode(), None)
    assert private_key.key_size >= 2048
    assert once["CHEF_AUTOMATE_ADMIN_PASSWORD"]
    server = wait_for_status(client, name)
    assert "CHEF_AUTOMATE_PIVOTAL_KEY" not in _attrs(server)
    assert "CHEF_AUTOMATE_ADMIN_PASSWORD" not in _attrs(server)
    # Never stored: the private key's bytes appear nowhere in the data dir.
    der = private_key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    for path in opscm.data_dir.iterdir():
        if path.is_file():
            data = path.read_bytes()
            assert once["CHEF_AUTOMATE_PIVOTAL_KEY"].encode()[40:120] not in data
            assert der[-64:] not in data
    client.delete_server(ServerName=name)


def test_chef_server_with_given_pivotal_public_key(client):
    name = _name("chefkey")
    key = rsa_key()
    attributes = [
        {"Name": "CHEF_AUTOMATE_PIVOTAL_KEY", "Value": public_pem(key)},
        {"Name": "CHEF_AUTOMATE_ADMIN_PASSWORD", "Value": "Sup3r#Secret"},
    ]
    created = client.create_server(**create_server_params(name, "ChefAutomate", EngineAttributes=attributes))["Server"]
    once = _attrs(created)
    assert "CHEF_AUTOMATE_PIVOTAL_KEY" not in once
    assert once["CHEF_AUTOMATE_ADMIN_PASSWORD"] == "Sup3r#Secret"
    client.delete_server(ServerName=name)


@pytest.mark.parametrize(
    "extra, fragment",
    [
        ({"Engine": "Ansible"}, "Engine 'Ansible'"),
        ({"Engine": "Puppet", "EngineModel": "Single"}, "EngineModel 'Single'"),
        ({"Engine": "Puppet", "EngineVersion": "2"}, "EngineVersion '2'"),
        ({"Engine": "ChefAutomate", "EngineVersion": "12"}, "EngineVersion '12'"),
        ({"Engine": "Puppet", "EngineAttributes": [{"Name": "PUPPET_ADMIN_PASSWORD", "Value": "short"}]}, "PUPPET_ADMIN_PASSWORD"),
        ({"Engine": "Puppet", "EngineAttributes": [{"Name": "BOGUS", "Value": "x"}]}, "BOGUS"),
        (
            {"Engine": "ChefAutomate", "EngineAttributes": [{"Name": "CHEF_AUTOMATE_PIVOTAL_KEY", "Value": "nope"}]},
            "CHEF_AUTOMATE_PIVOTAL_KEY",
        ),
        ({"Engine": "Puppet", "CustomDomain": "puppet.example.com"}, "CustomCertificate"),
    ],
)
def test_create_server_validation(client, extra, fragment):
    params = create_server_params(_name("bad"), **extra)
    code, message = _code(lambda: client.create_server(**params))
    assert code == "ValidationException"
    assert fragment in message
    assert _code(lambda: client.describe_servers(ServerName=params["ServerName"]))[0] == "ResourceNotFoundException"


def test_name_taken_and_limit(opscm):
    client = opscm.client("ap-south-1")  # a region of its own, so the count is this test's
    names = [f"lim-{i}" for i in range(10)]
    try:
        for name in names:
            client.create_server(**create_server_params(name, "ChefAutomate"))
        assert _code(lambda: client.create_server(**create_server_params(names[0], "Puppet")))[0] == (
            "ResourceAlreadyExistsException"
        )
        code, message = _code(lambda: client.create_server(**create_server_params("lim-11", "ChefAutomate")))
        assert code == "LimitExceededException" and "10" in message
    finally:
        for name in names:
            try:
                client.delete_server(ServerName=name)
            except ClientError:
                pass


def test_describe_unknown_server(client):
    code, message = _code(lambda: client.describe_servers(ServerName="does-not-exist"))
    assert code == "ResourceNotFoundException"
    assert message == "The requested resource does not exist, or access was denied."
    assert _code(lambda: client.delete_server(ServerName="does-not-exist"))[0] == "ResourceNotFoundException"
