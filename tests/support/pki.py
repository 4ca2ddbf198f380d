"""Shared bits of the PKI tests: Puppet OIDs, a permissive policy, DER values."""

import base64

from cryptography import x509

from opscm.pki import CsrPolicy

PP_UUID = x509.ObjectIdentifier("1.3.6.1.4.1.34380.1.1.1")
PP_ROLE = x509.ObjectIdentifier("1.3.6.1.4.1.34380.1.1.13")
PP_CLI_AUTH = x509.ObjectIdentifier("1.3.6.1.4.1.34380.1.3.39")
ALLOW_ALL = CsrPolicy(allow_subject_alt_names=True, allow_authorization_extensions=True)


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
