"""ExportServerEngineAttribute ``Userdata``: the rules, and the exported script run for real in a
sandbox (temporary directories, the real aws CLI, the real puppet agent's CSR)."""

import json
import re
import sqlite3
import subprocess

import boto3
import httpx
import pytest
from botocore.exceptions import ClientError
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from opscm.mock import OpsWorksCMMock
from tests.support import openssl
from tests.support.awscli import cli_home
from tests.support.puppet_agent import PuppetAgent
from tests.support.requests import create_server_params
from tests.support.server import start_server, wait_for_status
from tests.support.userdata import export_userdata, run_script, sandbox_env


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    return cli_home(tmp_path_factory.mktemp("cli"))


def _error(call):
    with pytest.raises(ClientError) as caught:
        call()
    return caught.value.response["Error"]["Code"], caught.value.response["Error"]["Message"]


_export = export_userdata
_run = run_script
_sandbox_env = sandbox_env


def _status_calls(opscm, since):
    """DescribeNodeAssociationStatus calls opscm answered since its output line *since*. The waiter's
    first call must succeed (AWS's waiter would call again only 15 s later)."""
    return opscm.operations_since(since)["DescribeNodeAssociationStatus"]


# ---- rules ---------------------------------------------------------------------------------

def test_only_userdata_can_be_exported(client, puppet_server):
    code, message = _error(lambda: client.export_server_engine_attribute(
        ExportAttributeName="StarterKit", ServerName=puppet_server))
    assert code == "ValidationException"
    assert "Userdata" in message


def test_unknown_server(client):
    code, message = _error(lambda: client.export_server_engine_attribute(
        ExportAttributeName="Userdata", ServerName="no-such-server"))
    assert code == "ResourceNotFoundException"
    assert message == "The requested resource does not exist, or access was denied."


@pytest.mark.parametrize("name, value, wanted", [
    ("OrganizationName", "other", "OrganizationName"),
    ("RunList", "recipe[apache2];reboot", "RunList"),
    ("RunList", "recipe[a],$(id)", "RunList"),
    ("NodeEnvironment", "prod env", "NodeEnvironment"),
    ("NodeClientVersion", "latest", "NodeClientVersion"),
    ("NodeClientVersion", "13.8", "NodeClientVersion"),
    ("PUPPET_NODE_ENVIRONMENT", "production", "PUPPET_NODE_ENVIRONMENT"),
    ("Bogus", "x", "Bogus"),
])
def test_chef_inputs_are_checked(client, chef_server, name, value, wanted):
    code, message = _error(lambda: _export(client, chef_server, **{name: value}))
    assert code == "ValidationException"
    assert wanted in message


@pytest.mark.parametrize("name, value", [("PUPPET_NODE_ENVIRONMENT", "Prod!"), ("CHEF_ORGANIZATION", "default"), ("Bogus", "")])
def test_puppet_inputs_are_checked(client, puppet_server, name, value):
    code, message = _error(lambda: _export(client, puppet_server, **{name: value}))
    assert code == "ValidationException"
    assert name in message


def test_puppet_ignores_the_chef_inputs_as_documented(client, puppet_server):
    script = _export(client, puppet_server, RunList="recipe[x]", OrganizationName="whatever",
                     NodeEnvironment="dev", NodeClientVersion="13.8.5")
    assert "recipe[x]" not in script and "whatever" not in script


def test_the_script_names_server_region_endpoint_and_api(opscm, client, chef_server, puppet_server):
    for server in (chef_server, puppet_server):
        endpoint = client.describe_servers(ServerName=server)["Servers"][0]["Endpoint"]
        script = _export(client, server)
        assert script.startswith("#!/bin/bash\n")
        assert f"OPSCM_SERVER_NAME='{server}'\n" in script
        assert "OPSCM_REGION='us-east-1'\n" in script
        assert f"opscm_default_endpoint='{endpoint}'\n" in script
        assert f"opscm_default_api_url='{opscm.url}'\n" in script
        assert "associate-node" in script and "wait node-associated" in script
        assert not re.search(r"@[A-Z][A-Z0-9_]*@", script), "a placeholder was left unfilled"
        syntax = subprocess.run(["bash", "-n"], input=script, capture_output=True, text=True)
        assert syntax.returncode == 0, syntax.stderr


def test_chef_inputs_reach_the_script(client, chef_server):
    script = _export(client, chef_server, RunList="recipe[chef-client], role[web],apache2::default",
                     NodeEnvironment="staging", NodeClientVersion="17.10.0", OrganizationName="default")
    first_boot = re.search(r"^chef_first_boot='(.*)'$", script, re.M).group(1)
    assert json.loads(first_boot) == {
        "run_list": ["recipe[chef-client]", "role[web]", "apache2::default"], "chef_environment": "staging"
    }
    assert "chef_environment='staging'" in script
    assert "chef_client_version='17.10.0'" in script


def _mock_client():
    return boto3.client("opsworkscm", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")


def _force_status(mock, name, status):
    with mock.app.deps.uow() as uow:
        server = uow.servers.get("123456789012", "us-east-1", name)
        server.status = status
        uow.servers.save(server)
        uow.commit()


@pytest.mark.parametrize("status", ["CREATING", "DELETING", "FAILED", "TERMINATED"])
def test_refused_states(status):
    # Jobs are not run: a new server stays CREATING, a deleted one DELETING.
    with OpsWorksCMMock(run_jobs=False) as mock:
        client = _mock_client()
        mock.attach(client)
        client.create_server(**create_server_params("early", "ChefAutomate"))
        if status == "DELETING":
            client.delete_server(ServerName="early")
        elif status != "CREATING":
            _force_status(mock, "early", status)
        code, message = _error(lambda: _export(client, "early"))
        assert code == "InvalidStateException"
        assert status in message and "early" in message


@pytest.mark.parametrize("status", ["HEALTHY", "UNHEALTHY", "BACKING_UP", "UNDER_MAINTENANCE"])
def test_other_states_export(status):
    with OpsWorksCMMock(run_jobs=False) as mock:
        client = _mock_client()
        mock.attach(client)
        client.create_server(**create_server_params("ready", "Puppet"))
        _force_status(mock, "ready", status)
        script = _export(client, "ready")
        # The mock's public URL is the API URL nodes are told to use.
        assert "opscm_default_api_url='http://opscm.local'" in script


# ---- the script, run for real --------------------------------------------------------------

def _registered_key(opscm, node):
    with sqlite3.connect(opscm.data_dir / "opscm.db") as db:
        row = db.execute("select public_key_pem from chef_clients where name = ?", (node,)).fetchone()
    return row[0] if row else None


def _public_half(private_pem: bytes) -> str:
    key = serialization.load_pem_private_key(private_pem, password=None)
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def _same_key(a: str, b: str) -> bool:
    load = lambda pem: serialization.load_pem_public_key(pem.encode()).public_numbers()  # noqa: E731
    return load(a) == load(b)


def test_chef_script_associates_the_node(opscm, client, home, chef_server, tmp_path):
    config = tmp_path / "etc-chef"
    script = _export(client, chef_server, RunList="recipe[chef-client]", NodeEnvironment="staging")
    env = _sandbox_env(home, opscm, OPSCM_NODE_NAME="ud-chef-1", OPSCM_CHEF_CONFIG_DIR=str(config))
    since = len(opscm.output)
    result = _run(script, env, tmp_path)
    assert result.returncode == 0, result.stderr
    assert _status_calls(opscm, since) == 1, "the waiter must succeed at its first call"

    client_pem = (config / "client.pem").read_bytes()
    assert (config / "client.pem").stat().st_mode & 0o077 == 0
    registered = _registered_key(opscm, "ud-chef-1")
    assert registered and _same_key(registered, _public_half(client_pem))
    endpoint = client.describe_servers(ServerName=chef_server)["Servers"][0]["Endpoint"]
    client_rb = (config / "client.rb").read_text()
    assert f"chef_server_url 'https://{endpoint}/organizations/default'" in client_rb
    assert "node_name 'ud-chef-1'" in client_rb
    assert f"client_key '{config}/client.pem'" in client_rb
    assert "environment 'staging'" in client_rb
    assert json.loads((config / "first-boot.json").read_text()) == {
        "run_list": ["recipe[chef-client]"], "chef_environment": "staging"
    }
    assert not list(config.glob("*.opscm")), "no temporary files are left behind"

    # Running it again is refused (the name is in force) and changes nothing on the node.
    refused = _run(script, env, tmp_path)
    assert refused.returncode != 0 and "already associated" in refused.stderr
    assert (config / "client.pem").read_bytes() == client_pem
    # With replacement allowed, it makes a new key: the old one is no longer the client's.
    client.update_server_engine_attributes(ServerName=chef_server, AttributeName="OPSCM_NODE_NAME_POLICY", AttributeValue="REPLACE")
    try:
        again = _run(script, env, tmp_path)
    finally:
        client.update_server_engine_attributes(ServerName=chef_server, AttributeName="OPSCM_NODE_NAME_POLICY", AttributeValue="UNIQUE")
    assert again.returncode == 0, again.stderr
    new_pem = (config / "client.pem").read_bytes()
    assert new_pem != client_pem
    assert _same_key(_registered_key(opscm, "ud-chef-1"), _public_half(new_pem))


def test_chef_script_installs_the_cli_model_from_opscm(opscm, client, chef_server, tmp_path):
    bare_home = tmp_path / "bare-home"
    bare_home.mkdir()
    config = tmp_path / "etc-chef"
    env = _sandbox_env(bare_home, opscm, OPSCM_NODE_NAME="ud-chef-bare", OPSCM_CHEF_CONFIG_DIR=str(config))
    result = _run(_export(client, chef_server), env, tmp_path)
    assert result.returncode == 0, result.stderr
    models = bare_home / ".aws" / "models" / "opsworks-cm" / "2016-11-01"
    assert sorted(p.name for p in models.iterdir()) == ["paginators-1.json", "service-2.json", "waiters-2.json"]
    assert _registered_key(opscm, "ud-chef-bare")


def test_chef_script_fails_when_association_is_refused(opscm, client, home, chef_server, tmp_path):
    config = tmp_path / "etc-chef"
    env = _sandbox_env(home, opscm, OPSCM_NODE_NAME="ud-chef-refused", OPSCM_CHEF_CONFIG_DIR=str(config))
    script = _export(client, chef_server).replace(f"OPSCM_SERVER_NAME='{chef_server}'", "OPSCM_SERVER_NAME='gone'")
    result = _run(script, env, tmp_path)
    assert result.returncode != 0
    assert "ResourceNotFoundException" in result.stderr
    # Nothing of the refused association stays on the node (its new private key included).
    assert not config.exists() or list(config.iterdir()) == []


@pytest.mark.puppet
@pytest.mark.awscli
@pytest.mark.openssl
def test_puppet_script_installs_a_verified_certificate(opscm, client, home, puppet_server, tmp_path):
    certname = "ud-puppet-1.example.com"
    root = tmp_path / "puppet"
    confdir, ssldir = root / "conf", root / "ssl"
    confdir.mkdir(parents=True)
    # What the agent reads: a smaller key for speed and an extension request it must copy.
    (confdir / "puppet.conf").write_text("[main]\nkeylength = 2048\n")
    (confdir / "csr_attributes.yaml").write_text("---\nextension_requests:\n  pp_role: webserver\n")
    script = _export(client, puppet_server, PUPPET_NODE_ENVIRONMENT="staging")
    env = _sandbox_env(home, opscm, OPSCM_NODE_NAME="UD-Puppet-1.example.com",
                       OPSCM_PUPPET_CONFDIR=str(confdir), OPSCM_PUPPET_SSLDIR=str(ssldir))
    since = len(opscm.output)
    result = _run(script, env, tmp_path)
    assert result.returncode == 0, result.stderr
    # The waiter's one call, then the script's own to read the certificate.
    assert _status_calls(opscm, since) == 2, "the waiter must succeed at its first call"

    cert_path, ca_path, crl_path = ssldir / "certs" / f"{certname}.pem", ssldir / "certs" / "ca.pem", ssldir / "crl.pem"
    verified = subprocess.run(
        ["openssl", "verify", "-crl_check", "-CRLfile", str(crl_path), "-CAfile", str(ca_path), str(cert_path)],
        capture_output=True, text=True,
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
    described = client.describe_servers(ServerName=puppet_server)["Servers"][0]
    attributes = {a["Name"]: a["Value"] for a in described["EngineAttributes"]}
    assert ca_path.read_text().strip() == attributes["PUPPET_API_CA_CERT"].strip()

    # The CSR was the agent's own: its key is the one in private_keys, its pp_role was copied.
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    key = serialization.load_pem_private_key((ssldir / "private_keys" / f"{certname}.pem").read_bytes(), None)
    assert cert.public_key().public_numbers() == key.public_key().public_numbers()
    pp_role = x509.ObjectIdentifier("1.3.6.1.4.1.34380.1.1.13")
    assert cert.extensions.get_extension_for_oid(pp_role).value.value.endswith(b"webserver")

    conf = (confdir / "puppet.conf").read_text()
    assert f"server = {described['Endpoint']}" in conf
    assert f"certname = {certname}" in conf
    assert f"ssldir = {ssldir}" in conf
    assert re.search(r"\[agent\][^\[]*environment = staging", conf)

    # The agent's own SSL checks accept what the script installed.
    agent = PuppetAgent(ssldir=ssldir, certname=certname)
    checked = agent.verify()
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert openssl.verify(tmp_path, ca_path.read_text(), cert_path.read_text(), crl_path.read_text()).returncode == 0

    # Running it again (a reboot's hook) is refused (the name is in force) and changes nothing on
    # the node: before, the key and certificate in force were deleted before the refusal.
    key_path = ssldir / "private_keys" / f"{certname}.pem"
    before = key_path.read_bytes(), cert_path.read_bytes()
    again = _run(script, env, tmp_path)
    assert again.returncode != 0 and "already associated" in again.stderr
    assert (key_path.read_bytes(), cert_path.read_bytes()) == before


# ---- what the script needs from opscm ------------------------------------------------------

def test_opscm_serves_the_cli_model(opscm):
    base = f"{opscm.url}/aws-cli/models/opsworks-cm/2016-11-01"
    waiters = httpx.get(f"{base}/waiters-2.json")
    assert waiters.status_code == 200
    assert "NodeAssociated" in waiters.json()["waiters"]
    assert httpx.get(f"{base}/service-2.json").json()["metadata"]["endpointPrefix"] == "opsworks-cm"
    assert httpx.get(f"{base}/credentials.json").status_code == 404
    assert httpx.get(f"{opscm.url}/aws-cli/models/opsworks-cm/2011-01-01/service-2.json").status_code == 404


def test_api_url_option(tmp_path):
    server = start_server(tmp_path / "data", "--ca-key-bits", "2048", "--api-url", "https://opscm.example.com:8443")
    try:
        client = server.client()
        client.create_server(**create_server_params("apiurl", "ChefAutomate"))
        wait_for_status(client, "apiurl")
        assert "opscm_default_api_url='https://opscm.example.com:8443'" in _export(client, "apiurl")
    finally:
        server.stop()
