"""The Puppet CA: CA certificate, agent certificate profile, CRL, and OpenSSL's opinion."""

import pickle
import subprocess
from datetime import datetime, timedelta, timezone

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import (
    AttributeOID,
    ExtensionOID,
    NameOID,
    SignatureAlgorithmOID,
)

from opscm.pki import (
    CaSigner,
    CsrPolicy,
    CsrRefused,
    InvalidCertname,
    PkiError,
    check_csr,
    create_ca,
)
from tests.support.pki import ALLOW_ALL, NS_COMMENT, PP_CLI_AUTH, PP_ROLE, PP_UUID, PUPPET_COMMENT_DER, assert_puppet_leaf_profile, utf8
from tests.support.requirements import require_openssl

NOW = datetime(2024, 5, 1, 12, 30, 15, tzinfo=timezone.utc)
DAY = timedelta(days=1)
PP_PRIV = x509.ObjectIdentifier("1.3.6.1.4.1.34380.1.2.7")


@pytest.fixture(scope="module")
def node_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def make_csr(key, cn="web1", extensions=(), attributes=()) -> str:
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    )
    for ext, critical in extensions:
        builder = builder.add_extension(ext, critical=critical)
    for oid, value in attributes:
        builder = builder.add_attribute(oid, value)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode()


def sign(signer, pem, certname="web1", policy=CsrPolicy(), serial=2, now=NOW, **kw) -> x509.Certificate:
    csr = check_csr(pem, certname, policy)
    return x509.load_pem_x509_certificate(
        signer.sign_node(csr, certname=certname, serial=serial, now=now, policy=policy, vetted=True, **kw).encode()
    )


def ext(cert, oid) -> x509.Extension:
    return cert.extensions.get_extension_for_oid(oid)


# --- the CA certificate ---------------------------------------------------------------

def test_ca_certificate_profile(material, ca_cert):
    assert ca_cert.version == x509.Version.v3
    assert ca_cert.subject.rfc4514_string() == "CN=Puppet CA: puppet.example.com"
    assert ca_cert.issuer == ca_cert.subject
    assert ca_cert.serial_number == 1
    assert ca_cert.signature_algorithm_oid == SignatureAlgorithmOID.RSA_WITH_SHA256
    assert ca_cert.not_valid_before_utc == NOW.replace(microsecond=0) - DAY
    assert ca_cert.not_valid_after_utc == NOW + timedelta(days=15 * 365)
    assert ca_cert.public_key().key_size == 2048

    bc = ext(ca_cert, ExtensionOID.BASIC_CONSTRAINTS)
    assert bc.critical and bc.value.ca is True and bc.value.path_length is None
    ku = ext(ca_cert, ExtensionOID.KEY_USAGE)
    assert ku.critical
    assert ku.value.key_cert_sign and ku.value.crl_sign
    assert not (ku.value.digital_signature or ku.value.key_encipherment)
    ski = ext(ca_cert, ExtensionOID.SUBJECT_KEY_IDENTIFIER)
    assert not ski.critical
    assert ski.value == x509.SubjectKeyIdentifier.from_public_key(ca_cert.public_key())
    aki = ext(ca_cert, ExtensionOID.AUTHORITY_KEY_IDENTIFIER)
    assert not aki.critical and aki.value.key_identifier == ski.value.digest
    comment = ext(ca_cert, NS_COMMENT)
    assert not comment.critical and comment.value.value == PUPPET_COMMENT_DER
    assert len(ca_cert.extensions) == 5
    ca_cert.verify_directly_issued_by(ca_cert)  # self-signed


def test_ca_key_is_unencrypted_pkcs8_matching_the_certificate(material, ca_cert):
    assert material.key_pem.startswith(b"-----BEGIN PRIVATE KEY-----")
    key = serialization.load_pem_private_key(material.key_pem, password=None)
    assert key.public_key().public_numbers() == ca_cert.public_key().public_numbers()


def test_ca_material_repr_hides_the_key(material):
    assert "PRIVATE" not in repr(material)
    assert "key_pem" not in repr(material)


def test_default_ca_is_rsa_4096():
    material = create_ca("big", now=NOW)
    cert = x509.load_pem_x509_certificate(material.cert_pem.encode())
    assert cert.public_key().key_size == 4096
    assert cert.subject.rfc4514_string() == "CN=Puppet CA: big"


@pytest.mark.parametrize(
    "name, message",
    [
        ("", "The CA name must not be empty"),
        (" x", "The CA name must be printable and have no surrounding spaces"),
        ("a\nb", "The CA name must be printable and have no surrounding spaces"),
        ("a" * 54, "The CA name is 54 characters long; at most 53 are allowed"),
    ],
)
def test_bad_ca_names(name, message):
    with pytest.raises(PkiError) as info:
        create_ca(name, now=NOW, key_bits=2048)
    assert str(info.value) == message


def test_naive_datetime_refused():
    with pytest.raises(ValueError, match="timezone-aware"):
        create_ca("x", now=datetime(2024, 1, 1), key_bits=2048)


# --- CaSigner construction -------------------------------------------------------------

def test_signer_exposes_the_certificate_but_not_the_key(signer, material):
    assert signer.cert_pem == material.cert_pem
    assert "PRIVATE" not in repr(signer)
    assert repr(signer) == "CaSigner('CN=Puppet CA: puppet.example.com')"
    with pytest.raises(TypeError):
        pickle.dumps(signer)


@pytest.mark.parametrize("key_is_ours", [False, True])
def test_signer_refuses_a_key_not_matching_the_certificate(material, key_is_ours):
    # Skipping OpenSSL's consistency check of a sealed key of opscm's own never skips this one.
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = other.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption())
    with pytest.raises(PkiError, match="^The CA private key does not match the CA certificate$"):
        CaSigner(pem, material.cert_pem, key_is_ours=key_is_ours)


def test_a_signer_of_opscms_own_key_signs_what_the_ca_certificate_verifies(material, node_key):
    ours = CaSigner(material.key_pem, material.cert_pem, key_is_ours=True)
    cert = sign(ours, make_csr(node_key))
    ca_key = x509.load_pem_x509_certificate(material.cert_pem.encode()).public_key()
    ca_key.verify(cert.signature, cert.tbs_certificate_bytes, padding.PKCS1v15(), cert.signature_hash_algorithm)


def test_signer_refuses_garbage_and_encrypted_keys(material):
    with pytest.raises(PkiError, match="^The CA private key is not a PEM private key$"):
        CaSigner(b"nope", material.cert_pem)
    key = serialization.load_pem_private_key(material.key_pem, password=None)
    encrypted = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.BestAvailableEncryption(b"pw"))
    with pytest.raises(PkiError, match="^The CA private key is encrypted; it must be decrypted first$"):
        CaSigner(encrypted, material.cert_pem)
    with pytest.raises(PkiError, match="^The CA certificate is not a PEM certificate$"):
        CaSigner(material.key_pem, "nope")


def test_signer_refuses_a_non_ca_certificate(signer, material, node_key):
    # A leaf certificate with its own key: key matches, but it is not a CA.
    leaf_pem = signer.sign_node(check_csr(make_csr(node_key), "web1"), certname="web1", serial=9, now=NOW)
    key_pem = node_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption())
    with pytest.raises(PkiError, match=r"not a CA certificate"):
        CaSigner(key_pem, leaf_pem)


# --- the agent certificate profile -----------------------------------------------------

def test_agent_certificate_profile(signer, ca_cert, node_key):
    cert = sign(signer, make_csr(node_key), serial=42)
    assert_puppet_leaf_profile(cert, ca_cert, node_key.public_key(), serial=42, certname="web1", now=NOW)


def test_san_always_holds_the_certname(signer, node_key):
    e = ext(sign(signer, make_csr(node_key)), ExtensionOID.SUBJECT_ALTERNATIVE_NAME)
    assert not e.critical
    assert list(e.value) == [x509.DNSName("web1")]


def test_san_equal_to_certname_not_duplicated(signer, node_key):
    pem = make_csr(node_key, extensions=[(x509.SubjectAlternativeName([x509.DNSName("web1")]), False)])
    e = ext(sign(signer, pem), ExtensionOID.SUBJECT_ALTERNATIVE_NAME)
    assert list(e.value) == [x509.DNSName("web1")]


def test_allowed_sans_copied_after_the_certname(signer, node_key):
    import ipaddress
    sans = [x509.DNSName("puppet"), x509.IPAddress(ipaddress.ip_address("10.1.2.3")), x509.DNSName("web1")]
    pem = make_csr(node_key, extensions=[(x509.SubjectAlternativeName(sans), False)])
    cert = sign(signer, pem, policy=CsrPolicy(allow_subject_alt_names=True))
    assert list(ext(cert, ExtensionOID.SUBJECT_ALTERNATIVE_NAME).value) == [
        x509.DNSName("web1"), x509.DNSName("puppet"), x509.IPAddress(ipaddress.ip_address("10.1.2.3"))
    ]


def test_pp_extensions_copied_verbatim(signer, node_key):
    requested = [
        (PP_UUID, utf8("ED803750-E3C7-44F5-BB08-41A04433FE2E"), False),
        (PP_ROLE, utf8("webserver"), False),
        (PP_PRIV, b"\x13\x05hello", True),  # PrintableString, critical: still verbatim
        (PP_CLI_AUTH, utf8("true"), False),
    ]
    pem = make_csr(node_key, extensions=[(x509.UnrecognizedExtension(o, v), c) for o, v, c in requested])
    cert = sign(signer, pem, policy=ALLOW_ALL)
    copied = [(e.oid, e.value.value, e.critical) for e in list(cert.extensions)[7:]]
    assert copied == requested


def test_csr_attributes_not_copied(signer, node_key):
    pem = make_csr(node_key, attributes=[(AttributeOID.CHALLENGE_PASSWORD, b"s3cret"),
                                         (x509.ObjectIdentifier("1.3.6.1.4.1.34380.1.1.4"), b"psk")])
    cert = sign(signer, pem)
    der = cert.public_bytes(serialization.Encoding.DER)
    assert b"s3cret" not in der and b"psk" not in der
    assert len(cert.extensions) == 7


def test_subject_is_cn_only_even_if_csr_has_more(signer, node_key):
    subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "acme"),
                         x509.NameAttribute(NameOID.COMMON_NAME, "web1")])
    csr = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(node_key, hashes.SHA256())
    cert = sign(signer, csr.public_bytes(serialization.Encoding.PEM))
    assert cert.subject.rfc4514_string() == "CN=web1"


def test_custom_ttl_and_timezone_normalized(signer, node_key):
    later = datetime(2024, 5, 1, 14, 30, 15, tzinfo=timezone(timedelta(hours=2)))  # == NOW
    cert = sign(signer, make_csr(node_key), now=later, ttl=timedelta(days=30))
    assert cert.not_valid_before_utc == NOW - DAY
    assert cert.not_valid_after_utc == NOW + timedelta(days=30)


def test_ec_agent_key_signed(signer):
    key = ec.generate_private_key(ec.SECP384R1())
    cert = sign(signer, make_csr(key))
    assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)
    assert cert.signature_algorithm_oid == SignatureAlgorithmOID.RSA_WITH_SHA256


def test_signature_verifies_against_the_ca_key(signer, ca_cert, node_key):
    cert = sign(signer, make_csr(node_key))
    cert.verify_directly_issued_by(ca_cert)
    ca_cert.public_key().verify(cert.signature, cert.tbs_certificate_bytes, padding.PKCS1v15(), hashes.SHA256())


UNVETTED = {
    "not-allowed": ([(x509.BasicConstraints(ca=True, path_length=None), True)], CsrPolicy()),
    "unknown": ([(x509.UnrecognizedExtension(x509.ObjectIdentifier("1.2.3.4"), b"\x05\x00"), False)], ALLOW_ALL),
    "authorization": ([(x509.UnrecognizedExtension(PP_CLI_AUTH, utf8("true")), False)], CsrPolicy()),
    "extra-san": ([(x509.SubjectAlternativeName([x509.DNSName("puppet")]), False)], CsrPolicy()),
    "wildcard-san": ([(x509.SubjectAlternativeName([x509.DNSName("*.example.com")]), False)], ALLOW_ALL),
    "email-san": ([(x509.SubjectAlternativeName([x509.RFC822Name("a@example.com")]), False)], ALLOW_ALL),
}


@pytest.mark.parametrize("case", sorted(UNVETTED))
def test_sign_node_refuses_what_the_policy_forbids_even_unvetted(signer, node_key, case):
    # A caller that skipped check_csr (or vetted with another policy) gets check_csr's refusal.
    extensions, policy = UNVETTED[case]
    pem = make_csr(node_key, extensions=extensions + [(x509.UnrecognizedExtension(PP_ROLE, utf8("db")), False)])
    with pytest.raises(CsrRefused) as vetting:
        check_csr(pem, "web1", policy)
    csr = x509.load_pem_x509_csr(pem.encode())
    for vetted in (False, True):
        with pytest.raises(CsrRefused) as signing:
            signer.sign_node(csr, certname="web1", serial=3, now=NOW, policy=policy, vetted=vetted)
        assert str(signing.value) == str(vetting.value)


def test_sign_node_policy_defaults_to_puppetservers(signer, node_key):
    pem = make_csr(node_key, extensions=[(x509.SubjectAlternativeName([x509.DNSName("puppet")]), False)])
    csr = check_csr(pem, "web1", ALLOW_ALL)  # vetted with a policy that allows it ...
    with pytest.raises(CsrRefused, match="subject alternative names other than DNS:web1"):
        signer.sign_node(csr, certname="web1", serial=3, now=NOW, vetted=True)  # ... signed with the default


def test_a_vetted_csr_signature_is_not_verified_twice(signer, node_key, monkeypatch):
    import opscm.pki.ca

    checked = []
    monkeypatch.setattr(opscm.pki.ca, "signature_is_valid", lambda csr: checked.append(csr) or True)
    csr = x509.load_pem_x509_csr(make_csr(node_key).encode())
    signer.sign_node(csr, certname="web1", serial=3, now=NOW, vetted=True)
    assert checked == []
    signer.sign_node(csr, certname="web1", serial=4, now=NOW)
    assert checked == [csr]


def test_sign_node_rechecks_certname_and_signature(signer, node_key):
    csr = x509.load_pem_x509_csr(make_csr(node_key).encode())
    with pytest.raises(InvalidCertname):
        signer.sign_node(csr, certname="Web1", serial=3, now=NOW)
    der = bytearray(csr.public_bytes(serialization.Encoding.DER))
    der[-1] ^= 1
    with pytest.raises(CsrRefused, match="invalid signature"):
        signer.sign_node(x509.load_der_x509_csr(bytes(der)), certname="web1", serial=3, now=NOW)


@pytest.mark.parametrize("kw", [dict(serial=0), dict(serial=-1), dict(serial=2**159), dict(serial=True),
                                dict(ttl=timedelta(0)), dict(now=datetime(2024, 1, 1))])
def test_sign_node_rejects_caller_mistakes(signer, node_key, kw):
    args = dict(certname="web1", serial=2, now=NOW) | kw
    with pytest.raises(ValueError) as info:
        signer.sign_node(x509.load_pem_x509_csr(make_csr(node_key).encode()), **args)
    assert not isinstance(info.value, PkiError)  # a bug of ours, not the client's


# --- the CRL ---------------------------------------------------------------------------

def test_crl_contents(signer, ca_cert):
    t1 = NOW - timedelta(days=3)
    t2 = NOW - timedelta(hours=1)
    crl = x509.load_pem_x509_crl(signer.crl([(7, t2), (3, t1), (7, t1)], number=12, now=NOW).encode())
    assert crl.issuer == ca_cert.subject
    assert crl.signature_algorithm_oid == SignatureAlgorithmOID.RSA_WITH_SHA256
    assert crl.last_update_utc == NOW.replace(microsecond=0) - DAY
    assert crl.next_update_utc == NOW + timedelta(days=5 * 365)
    assert ext(crl, ExtensionOID.CRL_NUMBER).value.crl_number == 12
    aki = ext(crl, ExtensionOID.AUTHORITY_KEY_IDENTIFIER)
    assert aki.value.key_identifier == ext(ca_cert, ExtensionOID.SUBJECT_KEY_IDENTIFIER).value.digest
    entries = [(r.serial_number, r.revocation_date_utc) for r in crl]
    assert entries == [(3, t1), (7, t1)]  # one entry per serial, the earliest time
    assert crl.is_signature_valid(ca_cert.public_key())
    ca_cert.public_key().verify(crl.signature, crl.tbs_certlist_bytes, padding.PKCS1v15(), hashes.SHA256())


def test_empty_crl(signer):
    crl = x509.load_pem_x509_crl(signer.crl([], number=1, now=NOW, next_update=timedelta(days=7)).encode())
    assert len(crl) == 0
    assert crl.next_update_utc == NOW + timedelta(days=7)
    assert ext(crl, ExtensionOID.CRL_NUMBER).value.crl_number == 1


@pytest.mark.parametrize("kw", [dict(number=-1), dict(revoked=[(0, NOW)]), dict(revoked=[(5, datetime(2024, 1, 1))]),
                                dict(next_update=timedelta(days=-1))])
def test_crl_rejects_caller_mistakes(signer, kw):
    args = dict(revoked=[], number=1, now=NOW) | kw
    with pytest.raises(ValueError):
        signer.crl(args.pop("revoked"), **args)


# --- OpenSSL agrees --------------------------------------------------------------------

def openssl(*args, cwd) -> subprocess.CompletedProcess:
    return subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    """A CA created now (OpenSSL verifies against the real clock), with two agents, one revoked."""
    require_openssl()
    d = tmp_path_factory.mktemp("openssl")
    now = datetime.now(timezone.utc)
    ca = create_ca("puppet.example.com", now=now, key_bits=2048)
    signer = CaSigner(ca.key_pem, ca.cert_pem)
    (d / "ca.pem").write_text(ca.cert_pem)
    for serial, name in [(2, "good"), (3, "bad")]:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = make_csr(key, name, extensions=[(x509.UnrecognizedExtension(PP_ROLE, utf8("web")), False)])
        cert = signer.sign_node(check_csr(pem, name), certname=name, serial=serial, now=now)
        (d / f"{name}.pem").write_text(cert)
    (d / "crl.pem").write_text(signer.crl([(3, now - timedelta(minutes=5))], number=2, now=now))
    return d, signer, now


def test_openssl_verifies_the_agent_certificate(live):
    d, _, _ = live
    for purpose in ("sslclient", "sslserver"):
        r = openssl("verify", "-x509_strict", "-purpose", purpose, "-CAfile", "ca.pem", "good.pem", cwd=d)
        assert r.returncode == 0, r.stdout + r.stderr
        assert r.stdout.strip() == "good.pem: OK"


def test_openssl_crl_check(live):
    d, _, _ = live
    good = openssl("verify", "-crl_check", "-CAfile", "ca.pem", "-CRLfile", "crl.pem", "good.pem", cwd=d)
    assert good.returncode == 0, good.stdout + good.stderr
    bad = openssl("verify", "-crl_check", "-CAfile", "ca.pem", "-CRLfile", "crl.pem", "bad.pem", cwd=d)
    assert bad.returncode != 0
    assert "certificate revoked" in bad.stdout + bad.stderr


def test_openssl_reads_the_crl(live):
    d, _, _ = live
    r = openssl("crl", "-in", "crl.pem", "-noout", "-text", "-CAfile", "ca.pem", cwd=d)
    assert r.returncode == 0, r.stderr
    assert "verify OK" in r.stdout + r.stderr
    assert "X509v3 CRL Number: \n                2" in r.stdout
    assert "Serial Number: 03" in r.stdout


def test_openssl_prints_the_puppet_profile(live):
    d, _, _ = live
    text = openssl("x509", "-in", "good.pem", "-noout", "-text", cwd=d).stdout
    assert "Puppet Server Internal Certificate" in text
    assert "X509v3 Basic Constraints: critical\n                CA:FALSE" in text
    assert "X509v3 Extended Key Usage: critical\n                TLS Web Server Authentication, TLS Web Client Authentication" in text
    assert "X509v3 Key Usage: critical\n                Digital Signature, Key Encipherment" in text
    assert "DNS:good" in text
    assert "1.3.6.1.4.1.34380.1.1.13: \n                ..web" in text


def test_openssl_req_csr_signed_with_attributes_dropped(live):
    d, signer, now = live
    (d / "req.cnf").write_text(
        "[req]\nprompt = no\ndistinguished_name = dn\nattributes = attrs\nreq_extensions = ext\n"
        "[dn]\nCN = cli.example.com\n"
        "[attrs]\nchallengePassword = hunter22\n"
        "[ext]\nsubjectAltName = DNS:cli.example.com\n"
        "1.3.6.1.4.1.34380.1.1.13 = ASN1:UTF8String:db\n"
    )
    r = openssl("req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", "cli.key", "-config", "req.cnf",
                "-out", "cli.csr", cwd=d)
    assert r.returncode == 0, r.stderr
    csr = check_csr((d / "cli.csr").read_text(), "cli.example.com")
    # the challengePassword is there...
    assert csr.attributes.get_attribute_for_oid(AttributeOID.CHALLENGE_PASSWORD).value == b"hunter22"
    pem = signer.sign_node(csr, certname="cli.example.com", serial=10, now=now)
    cert = x509.load_pem_x509_certificate(pem.encode())
    assert b"hunter22" not in cert.public_bytes(serialization.Encoding.DER)  # ...and not copied
    role = ext(cert, PP_ROLE)
    assert role.value.value == utf8("db") and not role.critical
    assert list(ext(cert, ExtensionOID.SUBJECT_ALTERNATIVE_NAME).value) == [x509.DNSName("cli.example.com")]
    (d / "cli.pem").write_text(pem)
    v = openssl("verify", "-x509_strict", "-CAfile", "ca.pem", "cli.pem", cwd=d)
    assert v.returncode == 0, v.stdout + v.stderr
    # The key OpenSSL generated is the one certified.
    m1 = openssl("x509", "-in", "cli.pem", "-noout", "-pubkey", cwd=d).stdout
    m2 = openssl("pkey", "-in", "cli.key", "-pubout", cwd=d).stdout
    assert m1 == m2 and m1.startswith("-----BEGIN PUBLIC KEY-----")
