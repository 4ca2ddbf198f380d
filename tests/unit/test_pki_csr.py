"""CSR vetting: every refusal rule of FACTS.md ("Puppet CA"), each with its exact message."""

import ipaddress

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import AttributeOID, NameOID
from hypothesis import given, settings
from hypothesis import strategies as st

from opscm.pki import CsrPolicy, CsrRefused, InvalidCertname, check_csr
from tests.support.pki import ALLOW_ALL, PP_CLI_AUTH, PP_ROLE, utf8

PP_PRIV = x509.ObjectIdentifier("1.3.6.1.4.1.34380.1.2.1")


@pytest.fixture(scope="module")
def key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def make_csr(key, cn="web1", *, extensions=(), subject=None, attributes=()) -> str:
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        subject or x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    )
    for ext, critical in extensions:
        builder = builder.add_extension(ext, critical=critical)
    for oid, value in attributes:
        builder = builder.add_attribute(oid, value)
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return builder.sign(key, algorithm).public_bytes(serialization.Encoding.PEM).decode()


def refusal(pem, certname="web1", policy=CsrPolicy()) -> str:
    with pytest.raises(CsrRefused) as info:
        check_csr(pem, certname, policy)
    return str(info.value)


def san(*names):
    return (x509.SubjectAlternativeName(list(names)), False)


# --- accepted -------------------------------------------------------------------------

def test_plain_csr_accepted_and_returned(key):
    csr = check_csr(make_csr(key), "web1")
    assert isinstance(csr, x509.CertificateSigningRequest)
    assert csr.subject.rfc4514_string() == "CN=web1"


def test_bytes_and_surrounding_whitespace_accepted(key):
    pem = make_csr(key)
    assert check_csr(("\n  " + pem + "\n\n").encode(), "web1").subject == check_csr(pem, "web1").subject


def test_new_certificate_request_header_accepted(key):
    pem = make_csr(key).replace("CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST")
    check_csr(pem, "web1")


def test_pp_registered_and_private_extensions_accepted(key):
    exts = [(x509.UnrecognizedExtension(PP_ROLE, utf8("web")), False),
            (x509.UnrecognizedExtension(PP_PRIV, utf8("x")), False)]
    check_csr(make_csr(key, extensions=exts), "web1")


def test_single_san_equal_to_certname_accepted_by_default(key):
    check_csr(make_csr(key, extensions=[san(x509.DNSName("web1"))]), "web1")


def test_attributes_such_as_challenge_password_are_accepted(key):
    pem = make_csr(key, attributes=[(AttributeOID.CHALLENGE_PASSWORD, b"secret")])
    check_csr(pem, "web1")


def test_extra_sans_accepted_when_allowed(key):
    pem = make_csr(key, extensions=[san(x509.DNSName("web1"), x509.DNSName("puppet"),
                                        x509.IPAddress(ipaddress.ip_address("10.0.0.1")))])
    check_csr(pem, "web1", CsrPolicy(allow_subject_alt_names=True))


def test_authorization_extension_accepted_when_allowed(key):
    pem = make_csr(key, extensions=[(x509.UnrecognizedExtension(PP_CLI_AUTH, utf8("true")), False)])
    check_csr(pem, "web1", CsrPolicy(allow_authorization_extensions=True))


@pytest.mark.parametrize("curve", [ec.SECP256R1(), ec.SECP384R1(), ec.SECP521R1()])
def test_ec_keys_on_standard_curves_accepted(curve):
    check_csr(make_csr(ec.generate_private_key(curve)), "web1")


# --- refused: the request itself ------------------------------------------------------

@pytest.mark.parametrize("garbage", ["", "hello", "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n", b"\x00\xff"])
def test_garbage_refused(garbage):
    assert refusal(garbage) == "CSR for 'web1' is not a PEM certificate signing request"


def test_der_refused(key):
    der = x509.load_pem_x509_csr(make_csr(key).encode()).public_bytes(serialization.Encoding.DER)
    assert refusal(der) == "CSR for 'web1' is not a PEM certificate signing request"


def test_private_key_refused_without_echoing_it(key):
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    message = refusal(pem)
    assert message == "CSR for 'web1' is a private key, not a certificate signing request"


def test_certificate_refused(key):
    from datetime import datetime, timedelta, timezone
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "web1")])
    now = datetime.now(timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(5).not_valid_before(now).not_valid_after(now + timedelta(days=1))
            .sign(key, hashes.SHA256()))
    assert refusal(cert.public_bytes(serialization.Encoding.PEM).decode()) == \
        "CSR for 'web1' is a certificate, not a certificate signing request"


def test_two_pem_blocks_refused(key):
    pem = make_csr(key)
    assert refusal(pem + pem) == \
        "CSR for 'web1' contains 2 PEM blocks; exactly one certificate signing request is expected"


def test_oversized_input_refused():
    assert refusal("x" * 70_000) == "CSR for 'web1' is 70000 bytes long; at most 65536 are allowed"


def test_bad_signature_refused(key):
    csr = x509.load_pem_x509_csr(make_csr(key).encode())
    der = bytearray(csr.public_bytes(serialization.Encoding.DER))
    der[-1] ^= 0x01  # last byte of the signature
    pem = x509.load_der_x509_csr(bytes(der)).public_bytes(serialization.Encoding.PEM)
    assert refusal(pem) == \
        "CSR for 'web1' has an invalid signature: it was not signed by the key it contains"


def test_invalid_certname_refused_before_parsing(key):
    with pytest.raises(InvalidCertname, match="Certname 'Web1' must be lower case"):
        check_csr(make_csr(key, "Web1"), "Web1")


# --- refused: subject and key ---------------------------------------------------------

def test_cn_must_equal_certname(key):
    assert refusal(make_csr(key, "web2")) == \
        "CSR for 'web1' has common name (CN) 'web2'; it must be 'web1'"


def test_cn_comparison_is_exact(key):
    assert refusal(make_csr(key, "WEB1")) == \
        "CSR for 'web1' has common name (CN) 'WEB1'; it must be 'web1'"


def test_missing_cn_refused(key):
    subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "acme")])
    assert refusal(make_csr(key, subject=subject)) == \
        "CSR for 'web1' has no common name (CN) in its subject; it must be 'web1'"


def test_two_cns_refused(key):
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "web1"),
                         x509.NameAttribute(NameOID.COMMON_NAME, "web1")])
    assert refusal(make_csr(key, subject=subject)) == \
        "CSR for 'web1' has 2 common names (CN) in its subject; it must have exactly one, 'web1'"


def test_other_subject_attributes_tolerated(key):
    # Puppet ignores them; the signed certificate's subject is CN=<certname> only.
    subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "acme"),
                         x509.NameAttribute(NameOID.COMMON_NAME, "web1")])
    check_csr(make_csr(key, subject=subject), "web1")


def test_small_rsa_key_refused():
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    assert refusal(make_csr(small)) == \
        "CSR for 'web1' has a 1024-bit RSA key; at least 2048 bits are required"


def test_ec_key_on_other_curve_refused():
    assert refusal(make_csr(ec.generate_private_key(ec.SECP256K1()))) == (
        "CSR for 'web1' has an EC key on curve secp256k1; allowed curves are "
        "secp256r1, secp384r1, secp521r1"
    )


def test_ed25519_key_refused():
    assert refusal(make_csr(ed25519.Ed25519PrivateKey.generate())) == (
        "CSR for 'web1' has an Ed25519 key; only RSA (at least 2048 bits) and EC "
        "(secp256r1, secp384r1, secp521r1) keys are allowed"
    )


# --- refused: extensions --------------------------------------------------------------

@pytest.mark.parametrize(
    "ext, described",
    [
        (x509.KeyUsage(True, False, True, False, False, False, False, False, False), "keyUsage (2.5.29.15)"),
        (x509.BasicConstraints(ca=True, path_length=None), "basicConstraints (2.5.29.19)"),
        (x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.CODE_SIGNING]), "extendedKeyUsage (2.5.29.37)"),
        (x509.UnrecognizedExtension(x509.ObjectIdentifier("1.2.3.4"), b"\x05\x00"), "1.2.3.4"),
        # Other Puppet arcs, and a pp arc itself, are not requestable extensions.
        (x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.34380.1.4.1"), utf8("x")), "1.3.6.1.4.1.34380.1.4.1"),
        (x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.34380.1.1"), utf8("x")), "1.3.6.1.4.1.34380.1.1"),
        (x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.34380.1.10.1"), utf8("x")), "1.3.6.1.4.1.34380.1.10.1"),
    ],
)
@pytest.mark.parametrize("policy", [CsrPolicy(), ALLOW_ALL])
def test_extension_not_allowed_named(key, ext, described, policy):
    assert refusal(make_csr(key, extensions=[(ext, False)]), policy=policy) == \
        f"CSR for 'web1' contains an extension that is not allowed: {described}"


def test_several_forbidden_extensions_all_named(key):
    exts = [(x509.BasicConstraints(ca=False, path_length=None), True),
            (x509.KeyUsage(True, False, True, False, False, False, False, False, False), True)]
    assert refusal(make_csr(key, extensions=exts)) == (
        "CSR for 'web1' contains extensions that are not allowed: "
        "basicConstraints (2.5.29.19), keyUsage (2.5.29.15)"
    )


def test_authorization_extension_refused_by_default(key):
    pem = make_csr(key, extensions=[(x509.UnrecognizedExtension(PP_CLI_AUTH, utf8("true")), False)])
    assert refusal(pem) == (
        "CSR for 'web1' contains an authorization extension, which is not allowed: "
        "pp_cli_auth (1.3.6.1.4.1.34380.1.3.39)"
    )


def test_authorization_extension_refused_even_if_sans_allowed(key):
    pem = make_csr(key, extensions=[
        (x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.34380.1.3.1"), utf8("x")), False),
        (x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.34380.1.3.99"), utf8("y")), False),
    ])
    assert refusal(pem, policy=CsrPolicy(allow_subject_alt_names=True)) == (
        "CSR for 'web1' contains authorization extensions, which are not allowed: "
        "pp_authorization (1.3.6.1.4.1.34380.1.3.1), 1.3.6.1.4.1.34380.1.3.99"
    )


@pytest.mark.parametrize(
    "names, listed",
    [
        ([x509.DNSName("puppet")], "DNS:puppet"),
        ([x509.DNSName("web1"), x509.DNSName("web1.example.com")], "DNS:web1.example.com"),
        ([x509.IPAddress(ipaddress.ip_address("10.0.0.1"))], "IP:10.0.0.1"),
        ([x509.RFC822Name("a@b.c"), x509.DNSName("*.x")], "email:a@b.c, DNS:*.x"),
    ],
)
def test_extra_sans_refused_by_default(key, names, listed):
    assert refusal(make_csr(key, extensions=[san(*names)])) == (
        f"CSR for 'web1' contains subject alternative names other than DNS:web1, which are "
        f"not allowed: {listed}"
    )


def test_wildcard_san_refused_even_when_allowed(key):
    pem = make_csr(key, extensions=[san(x509.DNSName("web1"), x509.DNSName("*.example.com"))])
    assert refusal(pem, policy=ALLOW_ALL) == (
        "CSR for 'web1' contains wildcard subject alternative names, which are not allowed: "
        "DNS:*.example.com"
    )


def test_non_dns_non_ip_san_refused_even_when_allowed(key):
    pem = make_csr(key, extensions=[san(x509.DNSName("web1"),
                                        x509.UniformResourceIdentifier("https://x"))])
    assert refusal(pem, policy=ALLOW_ALL) == (
        "CSR for 'web1' contains subject alternative names of a type that is not allowed "
        "(only DNS and IP are): URI:https://x"
    )


def test_messages_never_contain_key_material(key):
    pem = make_csr(key, "web2")
    body = "".join(pem.splitlines()[1:-1])
    message = refusal(pem)
    assert body[:40] not in message and "BEGIN" not in message


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300) | st.text(max_size=300))
def test_property_arbitrary_input_only_ever_refused_cleanly(data):
    with pytest.raises(CsrRefused):
        check_csr(data, "web1")


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_property_corrupted_csr_refused_cleanly_or_accepted_intact(key, data):
    # Flip bytes anywhere in a valid CSR: the result is refused with a CsrRefused, or (if
    # the flip hit nothing that matters) accepted; never another exception.
    der = bytearray(x509.load_pem_x509_csr(make_csr(key).encode()).public_bytes(serialization.Encoding.DER))
    i = data.draw(st.integers(0, len(der) - 1))
    der[i] ^= data.draw(st.integers(1, 255))
    import base64
    pem = "-----BEGIN CERTIFICATE REQUEST-----\n" + base64.encodebytes(bytes(der)).decode() + "-----END CERTIFICATE REQUEST-----\n"
    try:
        check_csr(pem, "web1")
    except CsrRefused as e:
        assert str(e).startswith("CSR for 'web1' ")
