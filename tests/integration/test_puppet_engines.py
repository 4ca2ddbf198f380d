"""Association made real on a real puppetserver, through a served opscm (issue: real engines).

* A ``puppetserver-ca`` backend (puppetserver is the CA): a real agent's CSR, associated through
  opscm with AWS's user-data command lines unchanged, is signed by puppetserver's CA, and
  ``puppet agent -t`` applies its catalog; DisassociateNode revokes and cleans it there.
* opscm's built-in CA serving a puppetserver whose CA service is off (``opscm
  puppetserver-bundle``): an agent with an opscm certificate applies its catalog; after
  DisassociateNode, ``opscm crl-sync`` (running) brings the new CRL and the agent is refused
  within seconds, with no manual step.
* The exported user data, run as a node would, ends with a node a real agent run accepts.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from botocore.exceptions import ClientError
from cryptography import x509

from opscm.engines.puppet_ca_api import PuppetCaApi
from tests.support.agent_runs import TLS_REFUSAL, assert_catalog_applied, describe, refused_run
from tests.support.awscli import cli_home, node_env, shell
from tests.support.puppet_agent import make_agent
from tests.support.puppetserver import ExternalCaFiles, selected_tests_use
from tests.support.requests import create_server_params
from tests.support.server import start_server, wait_for_status
from tests.support.userdata import export_userdata, run_script, sandbox_env

pytestmark = [pytest.mark.puppet, pytest.mark.awscli]

BACKEND = "corp-puppet"


def _opscm_command(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "opscm", *args], capture_output=True, text=True, timeout=120, **kwargs)


def _error(call):
    with pytest.raises(ClientError) as caught:
        call()
    return caught.value.response["Error"]["Code"], caught.value.response["Error"]["Message"]


# ---- opscm's built-in CA behind an external-CA puppetserver ----------------------------------


@pytest.fixture(scope="session")
def builtin_opscm(tmp_path_factory):
    server = start_server(tmp_path_factory.mktemp("builtin-ca"), "--ca-key-bits", "2048", "--schedule-interval", "0")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def bundled(builtin_opscm, tmp_path_factory):
    """A Puppet server of opscm's, and a puppetserver bundle issued by its CA."""
    client = builtin_opscm.client()
    name = f"bundled-{uuid.uuid4().hex[:6]}"
    client.create_server(**create_server_params(name, "Puppet"))
    wait_for_status(client, name)
    out = tmp_path_factory.mktemp("bundle") / "puppetserver"
    made = _opscm_command(
        "puppetserver-bundle", "--data-dir", str(builtin_opscm.data_dir), "--server", name,
        "--certname", "localhost", "--alt-names", "IP:127.0.0.1", "--out", str(out),
        "--key-bits", "2048", "--public-url", builtin_opscm.url,
    )
    assert made.returncode == 0, made.stderr
    return name, out


@pytest.fixture(scope="session", autouse=True)
def _begin_external_early(request, puppetserver_external):
    # puppetserver takes a minute to start: begin as soon as the session reaches this module.
    if selected_tests_use(request.session, "external_server"):
        name, out = request.getfixturevalue("bundled")
        puppetserver_external.begin(_files(out))


def _files(out: Path) -> ExternalCaFiles:
    return ExternalCaFiles("localhost", out / "cert.pem", out / "key.pem", out / "ca.pem", out / "crl.pem")


@pytest.fixture(scope="session")
def external_server(puppetserver_external, bundled):
    return puppetserver_external(_files(bundled[1]))


@pytest.fixture(scope="session")
def crl_sync(builtin_opscm, bundled, external_server):
    """`opscm crl-sync` running on the puppetserver host, as the bundle's instructions say."""
    name, out = bundled
    crl_url = next(
        a["Value"] for a in builtin_opscm.client().describe_servers(ServerName=name)["Servers"][0]["EngineAttributes"]
        if a["Name"] == "PUPPET_API_CRL_URL"
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "opscm", "crl-sync", "--url", crl_url, "--out", str(out / "crl.pem"), "--interval", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    yield process
    process.terminate()
    process.wait(20)


def test_the_bundle_holds_what_puppetserver_needs(bundled):
    name, out = bundled
    assert (out / "key.pem").stat().st_mode & 0o777 == 0o600
    cert = x509.load_pem_x509_certificate((out / "cert.pem").read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in names.get_values_for_type(x509.DNSName)
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    ca = x509.load_pem_x509_certificate((out / "ca.pem").read_bytes())
    assert cert.issuer == ca.subject and x509.load_pem_x509_crl((out / "crl.pem").read_bytes()).is_signature_valid(ca.public_key())
    settings = (out / "puppetserver.conf").read_text()
    assert f'ssl-crl-path: "{out}/crl.pem"' in settings and "certificate-authority-disabled-service" in settings
    assert "opscm crl-sync --url" in settings


def test_the_server_certificates_names_are_never_a_nodes(builtin_opscm, bundled, tmp_path):
    name, _ = bundled
    agent = make_agent(tmp_path, "localhost", keylength=2048)
    code, message = _error(lambda: builtin_opscm.client().associate_node(
        ServerName=name, NodeName="localhost",
        EngineAttributes=[{"Name": "PUPPET_NODE_CSR", "Value": agent.generate_csr()}],
    ))
    assert code == "ValidationException" and "reserved" in message
    # Nor disassociated: on a puppetserver CA backend that would revoke the server's own certificate.
    code, message = _error(lambda: builtin_opscm.client().disassociate_node(
        ServerName=name, NodeName="localhost", EngineAttributes=[]
    ))
    assert code == "ValidationException" and "reserved" in message


def test_builtin_ca_agent_applies_then_is_refused_after_disassociation(
    builtin_opscm, bundled, external_server, crl_sync, tmp_path
):
    name, _ = bundled
    client = builtin_opscm.client()
    agent = make_agent(tmp_path, f"web-{uuid.uuid4().hex[:6]}.example.com", keylength=2048)
    csr = agent.generate_csr({"extension_requests": {"pp_role": "web"}})
    token = client.associate_node(ServerName=name, NodeName=agent.certname, EngineAttributes=[
        {"Name": "PUPPET_NODE_CSR", "Value": csr}
    ])["NodeAssociationStatusToken"]
    status = client.describe_node_association_status(ServerName=name, NodeAssociationStatusToken=token)
    attributes = {a["Name"]: a["Value"] for a in client.describe_servers(ServerName=name)["Servers"][0]["EngineAttributes"]}
    agent.install(status["EngineAttributes"][0]["Value"], attributes["PUPPET_API_CA_CERT"], _get(attributes["PUPPET_API_CRL_URL"]))
    assert_catalog_applied(agent, agent.run_agent("localhost", external_server.port))

    client.disassociate_node(ServerName=name, NodeName=agent.certname)
    refused = refused_run(agent, "localhost", external_server.port)
    assert TLS_REFUSAL in refused.stderr, describe(refused)
    assert agent.applied() is None


def _user_data_node_gets_its_catalog(opscm, server_name: str, puppetserver_port: int, tmp_path) -> None:
    """The exported user data, run as a node would, then a real agent run with what it installed."""
    agent = make_agent(tmp_path, f"ud-{uuid.uuid4().hex[:6]}", keylength=2048)
    env = sandbox_env(
        cli_home(tmp_path), opscm, OPSCM_NODE_NAME=agent.certname,
        OPSCM_PUPPET_CONFDIR=str(agent.confdir), OPSCM_PUPPET_SSLDIR=str(agent.ssldir), OPSCM_PUPPET_KEY_BITS="2048",
    )
    result = run_script(export_userdata(opscm.client(), server_name), env, tmp_path)
    assert result.returncode == 0, result.stderr
    assert_catalog_applied(agent, agent.run_agent("localhost", puppetserver_port))


def test_builtin_exported_user_data_makes_a_node_the_agent_accepts(builtin_opscm, bundled, external_server, tmp_path):
    _user_data_node_gets_its_catalog(builtin_opscm, bundled[0], external_server.port, tmp_path)


def _get(url: str) -> str:
    import httpx

    return httpx.get(url).text


# ---- a puppetserver-ca backend ---------------------------------------------------------------


@pytest.fixture(scope="module")
def backed_opscm(puppetserver_ca, tmp_path_factory):
    root = tmp_path_factory.mktemp("puppet-backend")
    config = root / "opscm.toml"
    config.write_text(f"""
[backends.{BACKEND}]
kind = "puppetserver-ca"
url = "{puppetserver_ca.url}"
client_cert = "{puppetserver_ca.client_cert_path}"
client_key = "{puppetserver_ca.client_key_path}"
ca_bundle = "{puppetserver_ca.ca_cert_path}"
""")
    server = start_server(root / "data", "--config", str(config), "--schedule-interval", "0", "--health-interval", "0")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def backed(backed_opscm):
    client = backed_opscm.client()
    name = f"pbackend-{uuid.uuid4().hex[:6]}"
    client.create_server(**create_server_params(name, "Puppet", EngineAttributes=[{"Name": "OPSCM_BACKEND", "Value": BACKEND}]))
    return name, wait_for_status(client, name)


@pytest.fixture(scope="module")
def ca_api(puppetserver_ca):
    api = PuppetCaApi(
        puppetserver_ca.url, str(puppetserver_ca.client_cert_path), str(puppetserver_ca.client_key_path),
        str(puppetserver_ca.ca_cert_path),
    )
    yield api
    api.close()


def test_the_backend_is_the_servers_ca(backed, puppetserver_ca):
    _, server = backed
    attributes = {a["Name"]: a["Value"] for a in server["EngineAttributes"]}
    assert server["Endpoint"] == "localhost"
    assert attributes["PUPPET_API_CA_CERT"].strip() == puppetserver_ca.ca_cert_path.read_text().strip()
    assert attributes["PUPPET_API_CRL_URL"] == f"{puppetserver_ca.url}/puppet-ca/v1/certificate_revocation_list/ca"


def test_aws_user_data_lines_get_a_certificate_from_puppetserver(backed_opscm, backed, puppetserver_ca, ca_api, tmp_path):
    name, _ = backed
    agent = make_agent(tmp_path, f"aws-{uuid.uuid4().hex[:6]}.example.com", keylength=2048)
    csr_path = tmp_path / "csr.pem"
    csr_path.write_text(agent.generate_csr())
    certs = agent.ssldir / "certs"
    certs.mkdir(parents=True, exist_ok=True)
    # AWS's published Puppet user data, command for command.
    script = f"""
aws opsworks-cm describe-servers --region us-east-1 --query "Servers[0].EngineAttributes[?Name=='PUPPET_API_CA_CERT'].Value" --output text > {certs}/ca.pem
TOKEN=$(aws opsworks-cm associate-node --region us-east-1 --server-name {name} --node-name {agent.certname} --engine-attributes Name=PUPPET_NODE_CSR,Value="$(cat {csr_path})" --query NodeAssociationStatusToken --output text)
aws opsworks-cm wait node-associated --region us-east-1 --node-association-status-token "$TOKEN" --server-name {name}
aws opsworks-cm describe-node-association-status --region us-east-1 --node-association-status-token "$TOKEN" --server-name {name} --query 'EngineAttributes[0].Value' --output text > {certs}/{agent.certname}.pem
"""
    done = shell(script, node_env(cli_home(tmp_path), backed_opscm), tmp_path)
    assert done.returncode == 0, done.stderr
    signed = x509.load_pem_x509_certificate(agent.cert_path.read_bytes())
    assert ca_api.status(agent.certname)["serial_number"] == signed.serial_number, "signed by puppetserver's CA"
    agent.crl_path.write_text(ca_api.crl())
    assert_catalog_applied(agent, agent.run_agent("localhost", puppetserver_ca.port))

    client = backed_opscm.client()
    token = client.disassociate_node(ServerName=name, NodeName=agent.certname)["NodeAssociationStatusToken"]
    assert client.describe_node_association_status(ServerName=name, NodeAssociationStatusToken=token)[
        "NodeAssociationStatus"
    ] == "SUCCESS"
    assert ca_api.status(agent.certname) is None, "revoked and cleaned in puppetserver"
    crl = x509.load_pem_x509_crl(ca_api.crl().encode())
    assert crl.get_revoked_certificate_by_serial_number(signed.serial_number) is not None
    refused = refused_run(agent, "localhost", puppetserver_ca.port)
    assert TLS_REFUSAL in refused.stderr, describe(refused)


def _associated(opscm, server: str, node: str, csr: str) -> str:
    """The final status of associating ``node`` with ``csr`` (a backend's answer: final at once)."""
    client = opscm.client()
    token = client.associate_node(ServerName=server, NodeName=node, EngineAttributes=[
        {"Name": "PUPPET_NODE_CSR", "Value": csr}
    ])["NodeAssociationStatusToken"]
    return client.describe_node_association_status(ServerName=server, NodeAssociationStatusToken=token)[
        "NodeAssociationStatus"
    ]


def _agent_elsewhere(tmp_path, where: str, certname: str):
    (tmp_path / where).mkdir()
    return make_agent(tmp_path / where, certname, keylength=2048)


def _events(opscm, server: str) -> list[str]:
    return [e["Message"] for e in opscm.client().describe_events(ServerName=server)["ServerEvents"]]


def test_a_name_puppetserver_signed_already_is_not_taken(backed_opscm, backed, ca_api, tmp_path):
    name, _ = backed
    owner = make_agent(tmp_path, f"owned-{uuid.uuid4().hex[:6]}", keylength=2048)
    ca_api.submit_csr(owner.certname, owner.generate_csr())
    ca_api.sign(owner.certname)
    intruder = _agent_elsewhere(tmp_path, "other", owner.certname)
    assert _associated(backed_opscm, name, owner.certname, intruder.generate_csr()) == "FAILED"
    assert ca_api.status(owner.certname)["state"] == "signed", "the owner keeps its certificate"
    assert any("already has a signed certificate" in message for message in _events(backed_opscm, name))


def test_a_csr_an_earlier_attempt_submitted_is_signed_not_refused(backed_opscm, backed, ca_api, tmp_path):
    """An attempt whose submit reached puppetserver but whose answer was lost (a timeout, a 5xx)
    left the CSR pending: the next attempt signs it (puppetserver refuses a second submit), and
    a pending CSR of another key is a clear refusal."""
    name, _ = backed
    node = make_agent(tmp_path, f"retried-{uuid.uuid4().hex[:6]}", keylength=2048)
    csr = node.generate_csr()
    ca_api.submit_csr(node.certname, csr)  # the earlier attempt's submit
    assert _associated(backed_opscm, name, node.certname, csr) == "SUCCESS"
    assert ca_api.status(node.certname)["state"] == "signed"

    waiting = _agent_elsewhere(tmp_path, "waiting", f"waiting-{uuid.uuid4().hex[:6]}")
    ca_api.submit_csr(waiting.certname, waiting.generate_csr())
    another = _agent_elsewhere(tmp_path, "another", waiting.certname)
    assert _associated(backed_opscm, name, waiting.certname, another.generate_csr()) == "FAILED"
    assert ca_api.status(waiting.certname)["state"] == "requested", "the pending CSR is left as it was"
    messages = _events(backed_opscm, name)
    assert any("pending certificate request" in message and waiting.certname in message for message in messages)


def test_backend_exported_user_data_makes_a_node_the_agent_accepts(backed_opscm, backed, puppetserver_ca, tmp_path):
    _user_data_node_gets_its_catalog(backed_opscm, backed[0], puppetserver_ca.port, tmp_path)
