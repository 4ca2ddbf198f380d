"""Shared bits of the PKI tests: Puppet OIDs, a permissive policy, DER values."""

import base64
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID, SignatureAlgorithmOID

from opscm.pki import CsrPolicy

PP_UUID = x509.ObjectIdentifier("1.3.6.1.4.1.34380.1.1.1")
PP_ROLE = x509.ObjectIdentifier("1.3.6.1.4.1.34380.1.1.13")
PP_CLI_AUTH = x509.ObjectIdentifier("1.3.6.1.4.1.34380.1.3.39")
ALLOW_ALL = CsrPolicy(allow_subject_alt_names=True, allow_authorization_extensions=True)
NS_COMMENT = x509.ObjectIdentifier("2.16.840.1.113730.1.13")
PUPPET_COMMENT_DER = b"\x16\x22Puppet Server Internal Certificate"


def assert_puppet_leaf_profile(cert: x509.Certificate, ca_cert: x509.Certificate, public_key, *,
                               serial: int, certname: str, now: datetime) -> None:
    """What puppetserver's CA puts in every end-entity certificate (an agent's and its own):
    fields, every extension in its order, criticality and value (but the SAN's names)."""
    assert cert.version == x509.Version.v3
    assert cert.signature_algorithm_oid == SignatureAlgorithmOID.RSA_WITH_SHA256
    assert cert.serial_number == serial
    assert cert.issuer == ca_cert.subject
    assert cert.subject.rfc4514_string() == f"CN={certname}"
    assert cert.not_valid_before_utc == now.replace(microsecond=0) - timedelta(days=1)
    assert cert.not_valid_after_utc == now + timedelta(days=5 * 365)
    assert cert.public_key().public_numbers() == public_key.public_numbers()
    assert [e.oid for e in cert.extensions] == [
        NS_COMMENT,
        ExtensionOID.AUTHORITY_KEY_IDENTIFIER,
        ExtensionOID.SUBJECT_KEY_IDENTIFIER,
        ExtensionOID.BASIC_CONSTRAINTS,
        ExtensionOID.EXTENDED_KEY_USAGE,
        ExtensionOID.KEY_USAGE,
        ExtensionOID.SUBJECT_ALTERNATIVE_NAME,
    ]
    ext = cert.extensions.get_extension_for_oid
    comment = ext(NS_COMMENT)
    assert not comment.critical and comment.value.value == PUPPET_COMMENT_DER
    aki, ski = ext(ExtensionOID.AUTHORITY_KEY_IDENTIFIER), ext(ExtensionOID.SUBJECT_KEY_IDENTIFIER)
    assert not aki.critical and not ski.critical
    ca_ski = ca_cert.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_KEY_IDENTIFIER)
    assert aki.value.key_identifier == ca_ski.value.digest
    # SHA-1 of the subjectPublicKey BIT STRING contents (RFC 5280 method 1).
    digest = hashes.Hash(hashes.SHA1())
    digest.update(public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1))
    assert ski.value.digest == digest.finalize()
    bc = ext(ExtensionOID.BASIC_CONSTRAINTS)
    assert bc.critical and bc.value.ca is False and bc.value.path_length is None
    eku = ext(ExtensionOID.EXTENDED_KEY_USAGE)
    assert eku.critical
    assert list(eku.value) == [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    ku = ext(ExtensionOID.KEY_USAGE)
    assert ku.critical
    assert ku.value == x509.KeyUsage(
        digital_signature=True, content_commitment=False, key_encipherment=True,
        data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
        encipher_only=False, decipher_only=False,
    )
    assert not ext(ExtensionOID.SUBJECT_ALTERNATIVE_NAME).critical


def utf8(text: str) -> bytes:
    """A short DER UTF8String, as agents encode pp_* extension values."""
    raw = text.encode()
    return b"\x0c" + bytes([len(raw)]) + raw


def _der_length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def _der_integer(value: int) -> bytes:
    raw = value.to_bytes(value.bit_length() // 8 + 1, "big")  # a leading 0 keeps it positive
    return b"\x02" + _der_length(len(raw)) + raw


def rsa_public_key_pem(n: int, e: int) -> str:
    """A PKCS#1 RSAPublicKey with any numbers: keys no library would make."""
    body = _der_integer(n) + _der_integer(e)
    der = b"\x30" + _der_length(len(body)) + body
    return f"-----BEGIN RSA PUBLIC KEY-----\n{base64.encodebytes(der).decode()}-----END RSA PUBLIC KEY-----\n"
