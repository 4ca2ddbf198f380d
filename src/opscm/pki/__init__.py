"""Pure PKI policy (no I/O): Puppet certnames, CSR vetting, the Puppet CA, Chef keys.

Everything that can refuse client input raises a PkiError whose message is meant for
the client as is.
"""

from .alt_names import InvalidAltName, parse_alt_names
from .ca import CaMaterial, CaSigner, create_ca
from .certname import check_certname
from .csr import CsrPolicy, check_csr, check_extension_requests
from .errors import CsrRefused, InvalidCertname, InvalidPublicKey, PkiError
from .keys import check_rsa_public_key, generate_rsa_key, hash_password, verify_password

__all__ = [
    "CaMaterial",
    "CaSigner",
    "CsrPolicy",
    "CsrRefused",
    "InvalidAltName",
    "InvalidCertname",
    "InvalidPublicKey",
    "PkiError",
    "check_certname",
    "check_csr",
    "check_extension_requests",
    "check_rsa_public_key",
    "create_ca",
    "generate_rsa_key",
    "hash_password",
    "parse_alt_names",
    "verify_password",
]
