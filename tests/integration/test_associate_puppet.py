"""AssociateNode / DescribeNodeAssociationStatus / DisassociateNode for Puppet, through boto3."""

import base64
import concurrent.futures
import datetime
import uuid

import httpx
import pytest
from botocore.exceptions import ClientError
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, ObjectIdentifier

from tests.support import openssl
from tests.support.requests import create_server_params, make_csr, rsa_key
from tests.support.server import wait_for_status


def _server(client, name):
    return client.describe_servers(ServerName=name)["Servers"][0]


def _attribute(server, fragment):
    return next(a["Value"] for a in server["EngineAttributes"] if fragment in a["Name"])


def _associate(client, server, node, csr):
    return client.associate_node(
        ServerName=server, NodeName=node, EngineAttributes=[{"Name": "PUPPET_NODE_CSR", "Value": csr}]
    )


def _certificate(client, server, token):
    status = client.describe_node_association_status(ServerName=server, NodeAssociationStatusToken=token)
    assert status["NodeAssociationStatus"] == "SUCCESS"
    assert status["EngineAttributes"][0]["Name"] == "PUPPET_NODE_CERT"
    return status["EngineAttributes"][0]["Value"]


def _error(call):
    with pytest.raises(ClientError) as caught:
        call()
    return caught.value.response["Error"]["Code"], caught.value.response["Error"]["Message"]


def test_associate_signs_under_puppet_rules(client, puppet_server, tmp_path):
    pp_role = x509.UnrecognizedExtension(ObjectIdentifier("1.3.6.1.4.1.34380.1.1.13"), b"\x0c\x03web")
    csr = make_csr("web1.example.com", extensions=[(pp_role, False)])
    response = _associate(client, puppet_server, "web1.example.com", csr)
    assert set(response) == {"NodeAssociationStatusToken", "ResponseMetadata"}
    token = response["NodeAssociationStatusToken"]
    assert len(base64.b64decode(token, validate=True)) == 65

    cert_pem = _certificate(client, puppet_server, token)  # final at the first describe
    cert = x509.load_pem_x509_certificate(cert_pem.encode())
    ca_pem = _attribute(_server(client, puppet_server), "CA_CERT")
    ca = x509.load_pem_x509_certificate(ca_pem.encode())
    assert cert.subject.rfc4514_string() == "CN=web1.example.com"
    assert cert.issuer == ca.subject
    now = datetime.datetime.now(datetime.timezone.utc)
    assert abs(cert.not_valid_before_utc - (now - datetime.timedelta(days=1))) < datetime.timedelta(minutes=5)
    assert abs(cert.not_valid_after_utc - (now + datetime.timedelta(days=5 * 365))) < datetime.timedelta(minutes=5)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["web1.example.com"]
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    assert eku.critical and set(eku.value) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    copied = cert.extensions.get_extension_for_oid(pp_role.oid)
    assert copied.value.value == pp_role.value
    assert openssl.verify(tmp_path, ca_pem, cert_pem).returncode == 0


def test_serials_are_unique_under_concurrency(client, puppet_server):
    def associate(i):
        token = _associate(client, puppet_server, f"node{i}", make_csr(f"node{i}"))["NodeAssociationStatusToken"]
        return x509.load_pem_x509_certificate(_certificate(client, puppet_server, token).encode()).serial_number

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        serials = list(pool.map(associate, range(16)))
    assert len(set(serials)) == 16
    assert all(s > 1 for s in serials), "serial 1 is the CA's"


def test_an_association_repeated_with_the_same_csr_gets_the_same_certificate(client, puppet_server):
    """The aws CLI sends AssociateNode again by itself when its answer was lost: the repeat is
    answered with the certificate in force, not refused (nor a second certificate)."""
    csr = make_csr("repeated")
    certificates = [
        _certificate(client, puppet_server, _associate(client, puppet_server, "repeated", csr)["NodeAssociationStatusToken"])
        for _ in range(2)
    ]
    assert certificates[0] == certificates[1]


def test_a_signed_name_is_refused_as_puppet_refuses_it(client, puppet_server):
    _associate(client, puppet_server, "taken", make_csr("taken"))
    code, message = _error(lambda: _associate(client, puppet_server, "taken", make_csr("taken")))
    assert code == "ValidationException" and "already associated" in message
    client.disassociate_node(ServerName=puppet_server, NodeName="taken")
    _associate(client, puppet_server, "taken", make_csr("taken"))  # disassociate, then associate: always works


@pytest.mark.parametrize("name", ["ca", "localhost", "ENDPOINT"])
def test_the_servers_own_names_are_never_a_nodes(client, puppet_server, name):
    if name == "ENDPOINT":
        name = _server(client, puppet_server)["Endpoint"].lower()
    code, message = _error(lambda: _associate(client, puppet_server, name, make_csr(name)))
    assert code == "ValidationException" and "reserved" in message


def test_replace_policy_revokes_the_old_certificate(client, tmp_path):
    name = f"replace-{uuid.uuid4().hex[:6]}"
    client.create_server(**create_server_params(
        name, "Puppet", EngineAttributes=[{"Name": "OPSCM_NODE_NAME_POLICY", "Value": "replace"}]
    ))
    puppet_server = wait_for_status(client, name)["ServerName"]
    first = _certificate(client, puppet_server, _associate(client, puppet_server, "rekey", make_csr("rekey"))["NodeAssociationStatusToken"])
    second = _certificate(client, puppet_server, _associate(client, puppet_server, "rekey", make_csr("rekey"))["NodeAssociationStatusToken"])
    server = _server(client, puppet_server)
    ca_pem = _attribute(server, "CA_CERT")
    crl_pem = httpx.get(_attribute(server, "CRL")).text
    assert openssl.verify(tmp_path, ca_pem, first, crl_pem).returncode != 0
    assert openssl.verify(tmp_path, ca_pem, second, crl_pem).returncode == 0


def test_disassociate_revokes_and_publishes_crl(client, puppet_server, tmp_path):
    cert_pem = _certificate(client, puppet_server, _associate(client, puppet_server, "gone", make_csr("gone"))["NodeAssociationStatusToken"])
    serial = x509.load_pem_x509_certificate(cert_pem.encode()).serial_number
    token = client.disassociate_node(ServerName=puppet_server, NodeName="gone")["NodeAssociationStatusToken"]
    status = client.describe_node_association_status(ServerName=puppet_server, NodeAssociationStatusToken=token)
    assert status["NodeAssociationStatus"] == "SUCCESS"
    server = _server(client, puppet_server)
    ca = x509.load_pem_x509_certificate(_attribute(server, "CA_CERT").encode())
    crl = x509.load_pem_x509_crl(httpx.get(_attribute(server, "CRL")).content)
    assert crl.is_signature_valid(ca.public_key())
    assert crl.get_revoked_certificate_by_serial_number(serial) is not None
    assert openssl.verify(tmp_path, _attribute(server, "CA_CERT"), cert_pem, crl.public_bytes(
        __import__("cryptography.hazmat.primitives.serialization", fromlist=["Encoding"]).Encoding.PEM).decode()
    ).returncode != 0
    assert _error(lambda: client.disassociate_node(ServerName=puppet_server, NodeName="gone"))[0] == (
        "ResourceNotFoundException"
    )


@pytest.mark.parametrize(
    "node, csr, fragment",
    [
        ("web2", lambda: make_csr("web2", common_name="other"), "other"),
        ("Web2", lambda: make_csr("Web2"), "lower case"),
        ("web2", lambda: "not a csr", "PEM"),
        ("web2", lambda: make_csr("web2", extensions=[(x509.KeyUsage(True, False, False, False, False, False, False, False, False), True)]), "keyUsage"),
        ("web2", lambda: make_csr("web2", extensions=[(x509.SubjectAlternativeName([x509.DNSName("evil.example")]), False)]), "evil.example"),
        ("web2", lambda: make_csr("web2", key=rsa_key(1024)), "2048"),
    ],
)
def test_bad_csr_is_refused_with_a_precise_message(client, puppet_server, node, csr, fragment):
    code, message = _error(lambda: _associate(client, puppet_server, node, csr()))
    assert code == "ValidationException"
    assert fragment in message


def test_missing_or_foreign_attributes(client, puppet_server):
    assert _error(lambda: client.associate_node(ServerName=puppet_server, NodeName="n", EngineAttributes=[]))[0] == (
        "ValidationException"
    )
    code, message = _error(
        lambda: client.associate_node(
            ServerName=puppet_server,
            NodeName="n",
            EngineAttributes=[{"Name": "CHEF_ORGANIZATION", "Value": "default"}],
        )
    )
    assert code == "ValidationException" and "CHEF_ORGANIZATION" in message


def test_unknown_server_and_tokens(client, puppet_server, chef_server):
    assert _error(lambda: _associate(client, "no-such-server", "n", make_csr("n")))[0] == "ResourceNotFoundException"
    code, message = _error(
        lambda: client.describe_node_association_status(ServerName=puppet_server, NodeAssociationStatusToken="bogus")
    )
    assert code == "ResourceNotFoundException"
    assert message == "The requested resource does not exist, or access was denied."
    token = _associate(client, puppet_server, "tok", make_csr("tok"))["NodeAssociationStatusToken"]
    # The token of another server is unknown there.
    assert _error(
        lambda: client.describe_node_association_status(ServerName=chef_server, NodeAssociationStatusToken=token)
    )[0] == "ResourceNotFoundException"


def test_token_of_another_account_is_not_found(opscm, client, puppet_server):
    from tests.support.accounts import add_account_key

    token = _associate(client, puppet_server, "acct", make_csr("acct"))["NodeAssociationStatusToken"]
    other = opscm.client(key=add_account_key(opscm.data_dir))
    assert _error(
        lambda: other.describe_node_association_status(ServerName=puppet_server, NodeAssociationStatusToken=token)
    )[0] == "ResourceNotFoundException"


def test_validation_of_node_name_pattern(client, puppet_server):
    code, message = _error(lambda: _associate(client, puppet_server, "bad name!", make_csr("x")))
    assert code == "ValidationException"
    assert "at 'nodeName' failed to satisfy constraint: Member must satisfy regular expression pattern" in message
