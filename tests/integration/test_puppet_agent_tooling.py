"""Self-test of tests/support/puppet_agent.py against the real Debian puppet-agent.

The CA here is a throw-away one built with `cryptography`, following the
Puppet CA profile in /work/shared/FACTS.md; it only exists to prove that the
tooling (agent-made CSR, `puppet ssl verify`) tells good certificates from bad.
"""

from __future__ import annotations

import datetime as dt
import itertools
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import AttributeOID, ExtendedKeyUsageOID, ExtensionOID, NameOID

# tests/ is not a package and pyproject sets no pythonpath: make the repo root importable.
_REPO_ROOT = Path(__file__).resolve().parents[2]
if str(_REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(_REPO_ROOT))

from tests.support.puppet_agent import PuppetAgent, make_agent  # noqa: E402

pytestmark = [pytest.mark.puppet, pytest.mark.openssl]

CERTNAME = "node1.opscm-test.example"
PP_REG = "1.3.6.1.4.1.34380.1.1"
PP_PRIV = "1.3.6.1.4.1.34380.1.2"
EXTENSION_REQUESTS = {
    "pp_role": "web",  # PP_REG.13
    "pp_uuid": "ED803750-E3C7-44F5-BB08-41A04433FE2E",  # PP_REG.1
    "pp_environment": "production",  # PP_REG.12
    f"{PP_PRIV}.1": "private arc value",  # numeric OID straight through
}
EXPECTED_EXT_OIDS = {
    f"{PP_REG}.13": "web",
    f"{PP_REG}.1": "ED803750-E3C7-44F5-BB08-41A04433FE2E",
    f"{PP_REG}.12": "production",
    f"{PP_PRIV}.1": "private arc value",
}
CHALLENGE = "opscm-Chall3nge"
NETSCAPE_COMMENT = x509.ObjectIdentifier("2.16.840.1.113730.1.13")


def _der_string(tag: int, text: str) -> bytes:
    data = text.encode()
    assert len(data) < 128
    return bytes([tag, len(data)]) + data


def _pem(obj) -> str:
    return obj.public_bytes(serialization.Encoding.PEM).decode()


class ThrowawayCA:
    """Just enough of a Puppet CA (FACTS.md profile) to exercise the tooling."""

    def __init__(self, name: str, key_size: int = 4096):
        self.now = dt.datetime.now(dt.timezone.utc)
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=key_size)
        self.name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"Puppet CA: {name}")])
        ski = x509.SubjectKeyIdentifier.from_public_key(self.key.public_key())
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(self.name)
            .issuer_name(self.name)
            .public_key(self.key.public_key())
            .serial_number(1)
            .not_valid_before(self.now - dt.timedelta(days=1))
            .not_valid_after(self.now + dt.timedelta(days=5 * 365))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False, content_commitment=False, key_encipherment=False,
                    data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                    encipher_only=False, decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(ski, critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        self.cert_pem = _pem(self.cert)
        self._serials = itertools.count(2)
        self._crl_numbers = itertools.count(1)

    def _aki(self) -> x509.AuthorityKeyIdentifier:
        ski = self.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)

    def sign(self, csr_pem: str, certname: str | None = None) -> x509.Certificate:
        """Sign like puppetserver; ``certname`` overrides the CSR's CN (to forge a bad cert)."""
        csr = x509.load_pem_x509_csr(csr_pem.encode())
        assert csr.is_signature_valid
        if certname is None:
            (cn,) = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
            certname = cn.value
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, certname)]))
            .issuer_name(self.name)
            .public_key(csr.public_key())
            .serial_number(next(self._serials))
            .not_valid_before(self.now - dt.timedelta(days=1))
            .not_valid_after(self.now + dt.timedelta(days=5 * 365))
            .add_extension(
                x509.UnrecognizedExtension(NETSCAPE_COMMENT, _der_string(0x16, "Puppet Server Internal Certificate")),
                critical=False,
            )
            .add_extension(self._aki(), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(csr.public_key()), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                critical=True,
            )
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True, content_commitment=False, key_encipherment=True,
                    data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
                    encipher_only=False, decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(certname)]), critical=False)
        )
        for ext in csr.extensions:
            oid = ext.oid.dotted_string
            if oid.startswith((PP_REG + ".", PP_PRIV + ".")):
                builder = builder.add_extension(
                    x509.UnrecognizedExtension(ext.oid, ext.value.value), critical=ext.critical
                )
            else:
                raise AssertionError(f"a Puppet CA refuses CSR extension {oid}")
        return builder.sign(self.key, hashes.SHA256())

    def crl_pem(self, revoked_serials=()) -> str:
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.name)
            .last_update(self.now - dt.timedelta(minutes=5))
            .next_update(self.now + dt.timedelta(days=5 * 365))
            .add_extension(x509.CRLNumber(next(self._crl_numbers)), critical=False)
            .add_extension(self._aki(), critical=False)
        )
        for serial in revoked_serials:
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder()
                .serial_number(serial)
                .revocation_date(self.now - dt.timedelta(minutes=1))
                .build()
            )
        return _pem(builder.sign(self.key, hashes.SHA256()))


@pytest.fixture(scope="module")
def ca() -> ThrowawayCA:
    return ThrowawayCA("opscm-tooling-test")


@pytest.fixture(scope="module")
def agent_and_csr(tmp_path_factory) -> tuple[PuppetAgent, str]:
    # One agent start for the whole module: the verify tests re-install files
    # into the same ssldir and never touch the key.
    agent = make_agent(tmp_path_factory.mktemp("puppet"), CERTNAME)
    csr_pem = agent.generate_csr(
        {"extension_requests": EXTENSION_REQUESTS, "custom_attributes": {"challengePassword": CHALLENGE}}
    )
    return agent, csr_pem


@pytest.fixture()
def agent(agent_and_csr) -> PuppetAgent:
    return agent_and_csr[0]


@pytest.fixture()
def csr_pem(agent_and_csr) -> str:
    return agent_and_csr[1]


# ---------------------------------------------------------------- the CSR


def test_csr_is_written_by_the_agent_with_its_own_key(agent, csr_pem):
    assert agent.csr_path.read_text() == csr_pem
    assert agent.csr_attributes_path.is_file()
    csr = x509.load_pem_x509_csr(csr_pem.encode())
    assert csr.is_signature_valid
    assert isinstance(csr.signature_hash_algorithm, hashes.SHA256)
    assert csr.subject == x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, CERTNAME)])
    key = serialization.load_pem_private_key(agent.private_key_path.read_bytes(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    assert key.key_size == 4096  # Debian puppet-agent default keylength
    assert key.public_key().public_numbers() == csr.public_key().public_numbers()
    # No dns_alt_names configured: the agent requests no SAN.
    with pytest.raises(x509.ExtensionNotFound):
        csr.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME)


def test_csr_carries_pp_extension_requests_from_csr_attributes_yaml(csr_pem):
    csr = x509.load_pem_x509_csr(csr_pem.encode())
    found = {}
    for ext in csr.extensions:
        assert isinstance(ext.value, x509.UnrecognizedExtension)
        assert not ext.critical
        found[ext.oid.dotted_string] = ext.value.value
    # Puppet encodes each value as a DER UTF8String inside the extension.
    assert found == {oid: _der_string(0x0C, value) for oid, value in EXPECTED_EXT_OIDS.items()}


def test_csr_carries_challenge_password_attribute(csr_pem):
    csr = x509.load_pem_x509_csr(csr_pem.encode())
    attr = csr.attributes.get_attribute_for_oid(AttributeOID.CHALLENGE_PASSWORD)
    assert attr.value == CHALLENGE.encode()


# ---------------------------------------------------------------- verification


def test_cert_signed_for_the_csr_is_accepted(agent, csr_pem, ca):
    cert = ca.sign(csr_pem)
    # pp_* extensions were copied verbatim from the agent's CSR.
    assert cert.extensions.get_extension_for_oid(x509.ObjectIdentifier(f"{PP_REG}.13")).value.value == _der_string(
        0x0C, "web"
    )
    # A non-empty CRL (some other serial revoked) must not affect this cert.
    agent.install(_pem(cert), ca.cert_pem, ca.crl_pem(revoked_serials=[cert.serial_number + 1000]))
    result = agent.verify()
    assert result.returncode == 0, result.stderr
    assert f"Verified client certificate 'CN={CERTNAME}'" in result.stdout
    assert "Verified CA certificate 'CN=Puppet CA: opscm-tooling-test'" in result.stdout
    assert "strict check failed" not in result.stderr


def test_revoked_cert_is_rejected(agent, csr_pem, ca):
    cert = ca.sign(csr_pem)
    agent.install(_pem(cert), ca.cert_pem, ca.crl_pem(revoked_serials=[cert.serial_number]))
    result = agent.verify()
    assert result.returncode != 0
    assert f"Certificate 'CN={CERTNAME}' is revoked" in result.stderr
    assert "strict check failed" not in result.stderr  # puppet itself refused it


@pytest.mark.parametrize("other_ca_name", ["some-other-ca", "opscm-tooling-test"], ids=["other-name", "same-name"])
def test_cert_from_another_ca_is_rejected(agent, csr_pem, ca, other_ca_name):
    impostor = ThrowawayCA(other_ca_name, key_size=2048)
    agent.install(_pem(impostor.sign(csr_pem)), ca.cert_pem, ca.crl_pem())
    result = agent.verify()
    assert result.returncode != 0, result.stdout
    # Puppet 7.23 only warns when the issuer is not in ca.pem (and exits 0);
    # the strict check turns that warning into a failure.
    assert "cannot be found locally" in result.stderr
    assert "strict check failed" in result.stderr


def test_cert_with_wrong_certname_is_rejected(agent, csr_pem, ca):
    # Right CA, right key, but issued to another name: `puppet ssl verify`
    # never compares the subject with certname, so the strict check catches it.
    cert = ca.sign(csr_pem, certname="other-node.opscm-test.example")
    agent.install(_pem(cert), ca.cert_pem, ca.crl_pem())
    result = agent.verify()
    assert result.returncode != 0
    assert "strict check failed" in result.stderr
    assert "CN=other-node.opscm-test.example" in result.stderr
    assert "Error:" not in result.stderr  # stock `puppet ssl verify` itself exited 0


def test_cert_for_another_nodes_key_is_rejected(agent, ca):
    # A cert with the right name but issued for another node's key pair.
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    other_csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, CERTNAME)]))
        .sign(other_key, hashes.SHA256())
    )
    agent.install(_pem(ca.sign(_pem(other_csr))), ca.cert_pem, ca.crl_pem())
    result = agent.verify()
    assert result.returncode != 0
    assert "does not match its private key" in result.stderr
