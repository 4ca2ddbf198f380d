"""Object identifiers of the Puppet certificate profile, and readable names for messages."""

from __future__ import annotations

from cryptography.x509 import ObjectIdentifier
from cryptography.x509.oid import ExtensionOID

# Puppet Labs' private arc. Extensions agents may request (csr_attributes.yaml):
PP_REGISTERED_ARC = "1.3.6.1.4.1.34380.1.1"  # pp_uuid, pp_role, ... (trusted facts)
PP_PRIVATE_ARC = "1.3.6.1.4.1.34380.1.2"  # site-defined trusted facts
PP_AUTH_ARC = "1.3.6.1.4.1.34380.1.3"  # pp_cli_auth etc.: grants CA/API rights

# pp_cli_auth: auth.conf's rules for certificate_status and clean want it to be "true".
PP_CLI_AUTH = ObjectIdentifier(PP_AUTH_ARC + ".39")
NETSCAPE_COMMENT = ObjectIdentifier("2.16.840.1.113730.1.13")
PUPPET_COMMENT = "Puppet Server Internal Certificate"

_PUPPET_NAMES = {
    f"{PP_REGISTERED_ARC}.{n}": name
    for n, name in enumerate(
        [
            "pp_uuid", "pp_instance_id", "pp_image_name", "pp_preshared_key",
            "pp_cost_center", "pp_product", "pp_project", "pp_application", "pp_service",
            "pp_employee", "pp_created_by", "pp_environment", "pp_role",
            "pp_software_version", "pp_department", "pp_cluster", "pp_provisioner",
            "pp_region", "pp_datacenter", "pp_zone", "pp_network", "pp_securitypolicy",
            "pp_cloudplatform", "pp_apptier", "pp_hostname",
        ],
        start=1,
    )
} | {
    f"{PP_AUTH_ARC}.1": "pp_authorization",
    f"{PP_AUTH_ARC}.13": "pp_auth_role",
    f"{PP_AUTH_ARC}.39": "pp_cli_auth",
}

# Names as OpenSSL prints them, for the extensions a CSR is most likely to carry by mistake.
_X509_NAMES = {
    ExtensionOID.SUBJECT_ALTERNATIVE_NAME: "subjectAltName",
    ExtensionOID.BASIC_CONSTRAINTS: "basicConstraints",
    ExtensionOID.KEY_USAGE: "keyUsage",
    ExtensionOID.EXTENDED_KEY_USAGE: "extendedKeyUsage",
    ExtensionOID.SUBJECT_KEY_IDENTIFIER: "subjectKeyIdentifier",
    ExtensionOID.AUTHORITY_KEY_IDENTIFIER: "authorityKeyIdentifier",
    ExtensionOID.NAME_CONSTRAINTS: "nameConstraints",
    ExtensionOID.CERTIFICATE_POLICIES: "certificatePolicies",
    ExtensionOID.POLICY_CONSTRAINTS: "policyConstraints",
    ExtensionOID.INHIBIT_ANY_POLICY: "inhibitAnyPolicy",
    ExtensionOID.CRL_DISTRIBUTION_POINTS: "cRLDistributionPoints",
    ExtensionOID.FRESHEST_CRL: "freshestCRL",
    ExtensionOID.AUTHORITY_INFORMATION_ACCESS: "authorityInfoAccess",
    ExtensionOID.SUBJECT_INFORMATION_ACCESS: "subjectInfoAccess",
    ExtensionOID.ISSUER_ALTERNATIVE_NAME: "issuerAltName",
    ExtensionOID.OCSP_NO_CHECK: "noCheck",
    ExtensionOID.TLS_FEATURE: "tlsfeature",
    ObjectIdentifier("2.16.840.1.113730.1.1"): "nsCertType",
    NETSCAPE_COMMENT: "nsComment",
}


def under(oid: ObjectIdentifier, arc: str) -> bool:
    """True if ``oid`` lies strictly below ``arc`` (the arc itself names no extension)."""
    return oid.dotted_string.startswith(arc + ".")


def describe(oid: ObjectIdentifier) -> str:
    """'keyUsage (2.5.29.15)', or just the dotted form for an OID we have no name for."""
    name = _X509_NAMES.get(oid) or _PUPPET_NAMES.get(oid.dotted_string)
    return f"{name} ({oid.dotted_string})" if name else oid.dotted_string
