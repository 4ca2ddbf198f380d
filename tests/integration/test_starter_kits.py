"""CreateServer returns CHEF_STARTER_KIT / PUPPET_STARTER_KIT once: a zip with a README, the
configuration a user needs and the node user data script."""

import base64
import io
import json
import sqlite3
import stat
import uuid
import zipfile

import pytest
from cryptography.hazmat.primitives import serialization

from tests.support.requests import create_server_params, public_pem, rsa_key
from tests.support.server import wait_for_status


def _create(client, engine, **extra):
    name = f"kit-{engine.lower()[:6]}-{uuid.uuid4().hex[:6]}"
    server = client.create_server(**create_server_params(name, engine, **extra))["Server"]
    return name, server, {a["Name"]: a["Value"] for a in server["EngineAttributes"]}


def _kit(attributes, name):
    archive = zipfile.ZipFile(io.BytesIO(base64.b64decode(attributes[name], validate=True)))
    assert archive.testzip() is None
    return archive


def _files(archive, folder):
    prefix = f"{folder}-starter-kit/"
    assert all(n.startswith(prefix) for n in archive.namelist()), archive.namelist()
    return {n[len(prefix):]: archive.read(n).decode() for n in archive.namelist()}


def _mode(archive, folder, name):
    return stat.S_IMODE(archive.getinfo(f"{folder}-starter-kit/{name}").external_attr >> 16)


def _exported(client, name):
    value = client.export_server_engine_attribute(ExportAttributeName="Userdata", ServerName=name)["EngineAttribute"]["Value"]
    return base64.b64decode(value).decode()


def _stored_pivotal_key(opscm, name):
    with sqlite3.connect(opscm.data_dir / "opscm.db") as db:
        (engine_data,) = db.execute("select engine_data from servers where name = ?", (name,)).fetchone()
    return json.loads(engine_data)["pivotal_public_key"]


def _numbers(public_pem_text):
    return serialization.load_pem_public_key(public_pem_text.encode()).public_numbers()


@pytest.fixture(scope="module")
def chef_kit(client):
    name, server, attributes = _create(client, "ChefAutomate")
    wait_for_status(client, name)
    yield name, server, attributes
    client.delete_server(ServerName=name)


def test_chef_kit_holds_config_pivotal_key_and_user_data(opscm, client, chef_kit):
    name, server, attributes = chef_kit
    archive = _kit(attributes, "CHEF_STARTER_KIT")
    files = _files(archive, name)
    assert sorted(files) == [".chef/config.rb", ".chef/pivotal.pem", "README.md", "userdata.sh"]

    config = files[".chef/config.rb"]
    assert f"chef_server_url          'https://{server['Endpoint']}/organizations/default'" in config
    assert "node_name                'pivotal'" in config
    assert "client_key               File.join(current_dir, 'pivotal.pem')" in config

    # The kit's key is the private key CreateServer returned, whose public half the server keeps.
    assert files[".chef/pivotal.pem"] == attributes["CHEF_AUTOMATE_PIVOTAL_KEY"]
    private = serialization.load_pem_private_key(files[".chef/pivotal.pem"].encode(), None)
    assert private.public_key().public_numbers() == _numbers(_stored_pivotal_key(opscm, name))
    assert _mode(archive, name, ".chef/pivotal.pem") == 0o600
    assert _mode(archive, name, "userdata.sh") == 0o755

    assert files["userdata.sh"] == _exported(client, name)
    assert name in files["README.md"] and opscm.url in files["README.md"]


def test_kit_is_returned_once(client, chef_kit):
    name, _, _ = chef_kit
    described = client.describe_servers(ServerName=name)["Servers"][0]
    assert not [a for a in described["EngineAttributes"] if a["Name"].endswith("STARTER_KIT")]


def test_chef_kit_without_our_private_key(opscm, client):
    key = rsa_key()
    name, _, attributes = _create(
        client, "ChefAutomate", EngineAttributes=[{"Name": "CHEF_AUTOMATE_PIVOTAL_KEY", "Value": public_pem(key)}]
    )
    try:
        files = _files(_kit(attributes, "CHEF_STARTER_KIT"), name)
        assert ".chef/pivotal.pem" not in files
        assert "CHEF_AUTOMATE_PIVOTAL_KEY" not in attributes
        assert "put its private key here" in files["README.md"]
        assert _numbers(_stored_pivotal_key(opscm, name)) == key.public_key().public_numbers()
    finally:
        wait_for_status(client, name)
        client.delete_server(ServerName=name)


def test_puppet_kit_holds_the_ca_and_user_data(opscm, client):
    name, server, attributes = _create(client, "Puppet")
    try:
        assert "PUPPET_ADMIN_PASSWORD" in attributes
        archive = _kit(attributes, "PUPPET_STARTER_KIT")
        files = _files(archive, name)
        assert sorted(files) == ["README.md", "ca.pem", "puppet.conf", "userdata.sh"]
        wait_for_status(client, name)
        described = client.describe_servers(ServerName=name)["Servers"][0]
        published = {a["Name"]: a["Value"] for a in described["EngineAttributes"]}
        assert files["ca.pem"] == published["PUPPET_API_CA_CERT"]
        assert f"server = {server['Endpoint']}" in files["puppet.conf"]
        assert published["PUPPET_API_CRL_URL"] in files["README.md"]
        assert published["PUPPET_API_CA_URL"] in files["README.md"]
        assert files["userdata.sh"] == _exported(client, name)
        assert _mode(archive, name, "userdata.sh") == 0o755
    finally:
        client.delete_server(ServerName=name)
