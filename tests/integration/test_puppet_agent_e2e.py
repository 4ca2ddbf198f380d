"""A CSR made by the real Debian puppet agent, associated through opscm, accepted by the agent's own SSL checks."""

import httpx
import pytest
from cryptography import x509

from tests.support import openssl
from tests.support.puppet_agent import make_agent

pytestmark = [pytest.mark.puppet, pytest.mark.openssl]


def _server_documents(client, name):
    server = client.describe_servers(ServerName=name)["Servers"][0]
    attributes = {a["Name"]: a["Value"] for a in server["EngineAttributes"]}
    return attributes["PUPPET_API_CA_CERT"], httpx.get(attributes["PUPPET_API_CRL_URL"]).text


def test_real_agent_csr_is_signed_and_accepted(client, puppet_server, tmp_path):
    agent = make_agent(tmp_path, "agent1.example.com", keylength=2048)
    csr = agent.generate_csr({"extension_requests": {"pp_role": "webserver", "pp_environment": "production"}})
    token = client.associate_node(
        ServerName=puppet_server, NodeName="agent1.example.com", EngineAttributes=[{"Name": "PUPPET_NODE_CSR", "Value": csr}]
    )["NodeAssociationStatusToken"]
    status = client.describe_node_association_status(ServerName=puppet_server, NodeAssociationStatusToken=token)
    assert status["NodeAssociationStatus"] == "SUCCESS"
    cert_pem = status["EngineAttributes"][0]["Value"]

    cert = x509.load_pem_x509_certificate(cert_pem.encode())
    requested = x509.load_pem_x509_csr(csr.encode()).extensions
    for extension in requested:  # the agent's pp_* requests are copied verbatim
        assert cert.extensions.get_extension_for_oid(extension.oid).value == extension.value

    ca_pem, crl_pem = _server_documents(client, puppet_server)
    assert openssl.verify(tmp_path, ca_pem, cert_pem, crl_pem).returncode == 0
    agent.install(cert_pem, ca_pem, crl_pem)
    verified = agent.verify()
    assert verified.returncode == 0, verified.stdout + verified.stderr

    # Disassociation revokes: with the new CRL the agent refuses its own certificate.
    client.disassociate_node(ServerName=puppet_server, NodeName="agent1.example.com")
    ca_pem, crl_pem = _server_documents(client, puppet_server)
    agent.install(cert_pem, ca_pem, crl_pem)
    refused = agent.verify()
    assert refused.returncode != 0
    assert "revoked" in (refused.stdout + refused.stderr)
