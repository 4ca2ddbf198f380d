"""Server certificates from opscm's CA (``CaSigner.sign_server``) and the alt-name parser."""

import ipaddress
import subprocess
from datetime import datetime, timedelta, timezone

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtensionOID

from opscm.pki import InvalidAltName, InvalidCertname, PkiError, parse_alt_names
from opscm.pki.errors import InvalidPublicKey
from tests.support.pki import PP_CLI_AUTH, assert_puppet_leaf_profile

NOW = datetime(2024, 5, 1, 12, 30, 15, tzinfo=timezone.utc)
DAY = timedelta(days=1)
# pp_cli_auth exactly as puppetserver 7.9.5 writes it into its own certificate
# (openssl asn1parse of a CA-mode server's cert: OCTET STRING 0C0474727565).
CLI_AUTH_DER = bytes.fromhex("0c0474727565")
LOCAL = ["DNS:localhost", "IP:127.0.0.1"]


@pytest.fixture(scope="module")
def server_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_pem(key) -> str:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def issue(signer, key, certname="puppet.example.com", alt_names=(), serial=7, **kw) -> x509.Certificate:
    pem = signer.sign_server(public_pem(key), certname=certname, alt_names=list(alt_names), serial=serial, now=NOW, **kw)
    return x509.load_pem_x509_certificate(pem.encode())


def ext(cert, oid) -> x509.Extension:
    return cert.extensions.get_extension_for_oid(oid)


# --- the profile: every extension ------------------------------------------------------


def test_server_certificate_profile(signer, ca_cert, server_key):
    cert = issue(signer, server_key, "localhost", LOCAL, serial=2)
    assert_puppet_leaf_profile(cert, ca_cert, server_key.public_key(), serial=2, certname="localhost", now=NOW)
    cert.verify_directly_issued_by(ca_cert)


def test_san_is_the_certname_then_the_alt_names(signer, server_key):
    cert = issue(signer, server_key, "puppet.example.com", ["DNS:puppet", "IP:10.0.0.5", "IP:::1"])
    san = ext(cert, ExtensionOID.SUBJECT_ALTERNATIVE_NAME)
    assert not san.critical
    assert list(san.value) == [
        x509.DNSName("puppet.example.com"),
        x509.DNSName("puppet"),
        x509.IPAddress(ipaddress.ip_address("10.0.0.5")),
        x509.IPAddress(ipaddress.ip_address("::1")),
    ]


def test_san_certname_given_again_is_not_duplicated(signer, server_key):
    cert = issue(signer, server_key, "localhost", ["DNS:localhost", "IP:127.0.0.1", "DNS:localhost"])
    assert list(ext(cert, ExtensionOID.SUBJECT_ALTERNATIVE_NAME).value) == [
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
    ]


def test_no_alt_names_gives_the_certname_only(signer, server_key):
    cert = issue(signer, server_key, "puppet.example.com", [])
    assert list(ext(cert, ExtensionOID.SUBJECT_ALTERNATIVE_NAME).value) == [x509.DNSName("puppet.example.com")]


def test_cli_auth_only_when_asked(signer, server_key):
    plain = issue(signer, server_key)
    assert PP_CLI_AUTH not in [e.oid for e in plain.extensions]
    admin = issue(signer, server_key, cli_auth=True)
    e = ext(admin, PP_CLI_AUTH)
    assert not e.critical
    assert e.value.value == CLI_AUTH_DER
    assert [e.oid for e in admin.extensions][-1] == PP_CLI_AUTH


def test_ec_server_key(signer):
    key = ec.generate_private_key(ec.SECP256R1())
    cert = issue(signer, key)
    assert cert.public_key().public_numbers() == key.public_key().public_numbers()


def test_custom_ttl_and_timezone(signer, server_key):
    when = NOW.astimezone(timezone(timedelta(hours=2)))
    pem = signer.sign_server(public_pem(server_key), certname="s1", alt_names=[], serial=3, now=when, ttl=DAY * 30)
    cert = x509.load_pem_x509_certificate(pem.encode())
    assert cert.not_valid_after_utc == NOW + DAY * 30


# --- refusals ---------------------------------------------------------------------------


def test_refuses_a_private_key_without_echoing_it(signer, server_key):
    private = server_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    with pytest.raises(InvalidPublicKey, match="private key") as error:
        signer.sign_server(private, certname="s1", alt_names=[], serial=3, now=NOW)
    assert "BEGIN" not in str(error.value)


@pytest.mark.parametrize(
    "key_maker, message",
    [
        (lambda: rsa.generate_private_key(public_exponent=65537, key_size=1024), "1024 bits"),
        (lambda: ec.generate_private_key(ec.SECP256K1()), "RSA"),
        (lambda: ed25519.Ed25519PrivateKey.generate(), "RSA"),
    ],
)
def test_refuses_weak_or_unusual_keys(signer, key_maker, message):
    with pytest.raises(InvalidPublicKey, match=message):
        signer.sign_server(public_pem(key_maker()), certname="s1", alt_names=[], serial=3, now=NOW)


def test_refuses_garbage_key(signer):
    with pytest.raises(InvalidPublicKey, match="not a PEM public key"):
        signer.sign_server("hello", certname="s1", alt_names=[], serial=3, now=NOW)


def test_refuses_bad_certname_and_alt_names(signer, server_key):
    with pytest.raises(InvalidCertname):
        issue(signer, server_key, "Puppet.Example.com")
    with pytest.raises(InvalidAltName):
        issue(signer, server_key, "s1", ["DNS:*.example.com"])
    with pytest.raises(InvalidAltName, match="one string"):
        signer.sign_server(public_pem(server_key), certname="s1", alt_names="DNS:x", serial=3, now=NOW)


@pytest.mark.parametrize(
    "kw",
    [{"serial": 0}, {"serial": 2**159}, {"now": datetime(2024, 5, 1)}, {"ttl": timedelta(0)}],
)
def test_refuses_caller_mistakes(signer, server_key, kw):
    args = {"certname": "s1", "alt_names": [], "serial": 3, "now": NOW} | kw
    with pytest.raises(ValueError):
        signer.sign_server(public_pem(server_key), **args)


# --- parse_alt_names --------------------------------------------------------------------


def test_parse_alt_names_in_order_without_duplicates():
    assert parse_alt_names(["DNS:puppet", "IP:127.0.0.1", "IP:::1", "DNS:puppet", "IP:2001:db8::5"]) == [
        x509.DNSName("puppet"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("::1")),
        x509.IPAddress(ipaddress.ip_address("2001:db8::5")),
    ]
    assert parse_alt_names([]) == []
    assert parse_alt_names(("DNS:a-b_c.example.com", "DNS:_srv.x1")) == [
        x509.DNSName("a-b_c.example.com"),
        x509.DNSName("_srv.x1"),
    ]


@pytest.mark.parametrize(
    "entry, message",
    [
        ("localhost", "must start with 'DNS:' or 'IP:'"),
        ("dns:localhost", "must start with 'DNS:' or 'IP:'"),
        ("URI:http://x", "must start with 'DNS:' or 'IP:'"),
        ("email:a@b", "must start with 'DNS:' or 'IP:'"),
        ("DNS:", "empty DNS name"),
        ("DNS:*.example.com", "wildcard"),
        ("DNS:Puppet", "lower case"),
        ("DNS:a..b", "not a host name"),
        ("DNS:.example.com", "not a host name"),
        ("DNS:example.com.", "not a host name"),
        ("DNS:-a.example.com", "not a host name"),
        ("DNS:a-.example.com", "not a host name"),
        ("DNS:a b", "not a host name"),
        ("DNS:h\u00e9.example", "not a host name"),
        ("DNS:" + "a" * 64, "not a host name"),
        ("DNS:" + ".".join(["a" * 60] * 5), "longer than 253"),
        ("DNS:127.0.0.1", "write it as 'IP:127.0.0.1'"),
        ("IP:", "not an IPv4 or IPv6 address"),
        ("IP:localhost", "not an IPv4 or IPv6 address"),
        ("IP:256.0.0.1", "not an IPv4 or IPv6 address"),
        ("IP:127.000.000.001", "not an IPv4 or IPv6 address"),
        ("IP:10.0.0.0/8", "not an IPv4 or IPv6 address"),
        ("IP:[::1]", "no brackets or zone"),
        ("IP:fe80::1%eth0", "no brackets or zone"),
        ("IP: 127.0.0.1", "no brackets or zone"),
    ],
)
def test_parse_alt_names_refuses(entry, message):
    with pytest.raises(InvalidAltName, match=message.replace("*", r"\*").replace(".", r"\.").replace("(", r"\(")):
        parse_alt_names([entry])


def test_parse_alt_names_refuses_non_strings_and_a_bare_string():
    with pytest.raises(InvalidAltName, match="one string"):
        parse_alt_names("DNS:localhost")
    with pytest.raises(InvalidAltName, match="must be a string"):
        parse_alt_names([b"DNS:localhost"])
    with pytest.raises(InvalidAltName, match="at most 100"):
        parse_alt_names([f"DNS:h{i}" for i in range(101)])
    assert issubclass(InvalidAltName, PkiError)


# --- OpenSSL's opinion ------------------------------------------------------------------


def test_openssl_verifies_the_server_certificate_for_its_names(tmp_path, signer, material, server_key):
    (tmp_path / "ca.pem").write_text(material.cert_pem)
    pem = signer.sign_server(public_pem(server_key), certname="localhost", alt_names=LOCAL, serial=9, now=datetime.now(timezone.utc))
    (tmp_path / "server.pem").write_text(pem)
    for check in (["-verify_hostname", "localhost"], ["-verify_ip", "127.0.0.1"]):
        r = subprocess.run(
            ["openssl", "verify", "-x509_strict", "-purpose", "sslserver", *check, "-CAfile", "ca.pem", "server.pem"],
            cwd=tmp_path, capture_output=True, text=True, timeout=30,
        )
        assert r.returncode == 0, r.stdout + r.stderr
    wrong = subprocess.run(
        ["openssl", "verify", "-verify_ip", "127.0.0.2", "-CAfile", "ca.pem", "server.pem"],
        cwd=tmp_path, capture_output=True, text=True, timeout=30,
    )
    assert wrong.returncode != 0
