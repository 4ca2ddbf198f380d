"""Shared bits of the PKI tests: Puppet OIDs, a permissive policy, DER UTF8String values."""

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
