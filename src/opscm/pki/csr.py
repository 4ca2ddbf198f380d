"""Checking a certificate signing request against Puppet's signing policy.

Everything here works on client input, so each refusal says precisely what is wrong
(the message reaches the API client) and never echoes key material.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.x509.oid import ExtensionOID, NameOID

from .certname import check_certname, quote
from .errors import CsrRefused
from .oids import PP_AUTH_ARC, PP_PRIVATE_ARC, PP_REGISTERED_ARC, describe, under

# Far above any real request (a 16384-bit RSA CSR is ~6 KiB); bounds parsing work.
MAX_CSR_BYTES = 64 * 1024

# Keys: RSA as Puppet agents make by default; EC on the curves Puppet's `named_curve`
# setting can produce (agents with key_type=ec). Other key types (Ed25519, DSA, ...)
# are refused: the Puppet profile (keyEncipherment, sha256WithRSA chain) is not made for
# them. RSA above 16384 bits is refused to bound verification cost.
MIN_RSA_BITS = 2048
MAX_RSA_BITS = 16384
ALLOWED_CURVES = ("secp256r1", "secp384r1", "secp521r1")


@dataclass(frozen=True)
class CsrPolicy:
    """What a CSR may ask for beyond the certname (puppetserver's allow-* settings)."""

    allow_subject_alt_names: bool = False
    allow_authorization_extensions: bool = False


def check_csr(
    csr_pem: str | bytes, certname: str, policy: CsrPolicy = CsrPolicy()
) -> x509.CertificateSigningRequest:
    """Parse and vet a CSR for ``certname``; return it, or raise CsrRefused/InvalidCertname."""
    check_certname(certname)
    who = f"CSR for {quote(certname)}"
    csr = _load(csr_pem, who)
    _check_key(csr, who)
    if not signature_is_valid(csr):
        raise CsrRefused(f"{who} has an invalid signature: it was not signed by the key it contains")
    _check_subject(csr, certname, who)
    _check_extensions(csr, certname, policy, who)
    return csr


def check_extension_requests(
    csr: x509.CertificateSigningRequest, certname: str, policy: CsrPolicy = CsrPolicy()
) -> list[x509.Extension]:
    """The CSR's extension requests if *policy* allows every one of them, else CsrRefused
    (check_csr's messages): only SANs and ``pp_*`` extensions, each as the policy says."""
    who = f"CSR for {quote(certname)}"
    _check_extensions(csr, certname, policy, who)
    return list(csr.extensions)


def signature_is_valid(csr: x509.CertificateSigningRequest) -> bool:
    # An unsupported signature algorithm raises instead of returning False: same outcome.
    try:
        return csr.is_signature_valid
    except Exception:
        return False


def format_general_name(name: x509.GeneralName) -> str:
    """A SAN entry as OpenSSL prints it ('DNS:web1'), escaped and cut for messages."""
    if isinstance(name, x509.DNSName):
        return "DNS:" + _printable(name.value)
    if isinstance(name, x509.IPAddress):
        return f"IP:{name.value}"
    if isinstance(name, x509.RFC822Name):
        return "email:" + _printable(name.value)
    if isinstance(name, x509.UniformResourceIdentifier):
        return "URI:" + _printable(name.value)
    if isinstance(name, x509.DirectoryName):
        return "DirName:" + _printable(name.value.rfc4514_string())
    if isinstance(name, x509.RegisteredID):
        return f"RID:{name.value.dotted_string}"
    if isinstance(name, x509.OtherName):
        return f"othername:{name.type_id.dotted_string}"
    return type(name).__name__


def _printable(text: str, limit: int = 80) -> str:
    if len(text) > limit:
        text = text[:limit] + "..."
    return text if text.isprintable() else repr(text)[1:-1]


def _load(csr_pem: str | bytes, who: str) -> x509.CertificateSigningRequest:
    if isinstance(csr_pem, str):
        data = csr_pem.encode("utf-8", "replace")
    elif isinstance(csr_pem, (bytes, bytearray, memoryview)):
        data = bytes(csr_pem)
    else:
        raise CsrRefused(f"{who} is not a PEM certificate signing request")
    if len(data) > MAX_CSR_BYTES:
        raise CsrRefused(f"{who} is {len(data)} bytes long; at most {MAX_CSR_BYTES} are allowed")
    data = data.strip()
    blocks = data.count(b"-----BEGIN ")
    if blocks > 1:
        raise CsrRefused(
            f"{who} contains {blocks} PEM blocks; exactly one certificate signing request is expected"
        )
    # Common mix-ups deserve a precise answer (without echoing what was sent).
    if b"PRIVATE KEY-----" in data:
        raise CsrRefused(f"{who} is a private key, not a certificate signing request")
    if b"-----BEGIN CERTIFICATE-----" in data:
        raise CsrRefused(f"{who} is a certificate, not a certificate signing request")
    try:
        return x509.load_pem_x509_csr(data)
    except Exception:  # ValueError, InvalidVersion, ...: all mean "not a usable CSR"
        raise CsrRefused(f"{who} is not a PEM certificate signing request") from None


def _check_key(csr: x509.CertificateSigningRequest, who: str) -> None:
    try:
        key = csr.public_key()
    except Exception:
        raise CsrRefused(f"{who} has a public key of an unsupported type") from None
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            raise CsrRefused(
                f"{who} has a {key.key_size}-bit RSA key; at least {MIN_RSA_BITS} bits are required"
            )
        if key.key_size > MAX_RSA_BITS:
            raise CsrRefused(
                f"{who} has a {key.key_size}-bit RSA key; at most {MAX_RSA_BITS} bits are allowed"
            )
        return
    if isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.name not in ALLOWED_CURVES:
            raise CsrRefused(
                f"{who} has an EC key on curve {key.curve.name}; allowed curves are "
                + ", ".join(ALLOWED_CURVES)
            )
        return
    kind = {
        ed25519.Ed25519PublicKey: "an Ed25519",
        ed448.Ed448PublicKey: "an Ed448",
        dsa.DSAPublicKey: "a DSA",
    }
    name = next((v for k, v in kind.items() if isinstance(key, k)), "an unsupported")
    raise CsrRefused(
        f"{who} has {name} key; only RSA (at least {MIN_RSA_BITS} bits) and EC "
        f"({', '.join(ALLOWED_CURVES)}) keys are allowed"
    )


def _check_subject(csr: x509.CertificateSigningRequest, certname: str, who: str) -> None:
    try:
        cns = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    except Exception:
        raise CsrRefused(f"{who} has a subject that cannot be parsed") from None
    if not cns:
        raise CsrRefused(f"{who} has no common name (CN) in its subject; it must be {quote(certname)}")
    if len(cns) > 1:
        raise CsrRefused(
            f"{who} has {len(cns)} common names (CN) in its subject; it must have exactly one, "
            f"{quote(certname)}"
        )
    cn = cns[0].value
    if isinstance(cn, bytes):
        cn = cn.decode("utf-8", "replace")
    if cn != certname:
        raise CsrRefused(f"{who} has common name (CN) {quote(cn)}; it must be {quote(certname)}")


def _check_extensions(
    csr: x509.CertificateSigningRequest, certname: str, policy: CsrPolicy, who: str
) -> None:
    try:
        extensions = list(csr.extensions)
    except x509.DuplicateExtension as e:
        raise CsrRefused(f"{who} contains the extension {describe(e.oid)} more than once") from None
    except Exception:
        raise CsrRefused(f"{who} contains a malformed extension request") from None

    forbidden = [e.oid for e in extensions if not is_copyable(e.oid)]
    if forbidden:
        raise CsrRefused(
            _listing(who, "an extension that is not allowed", "extensions that are not allowed", forbidden)
        )

    auth = [e.oid for e in extensions if under(e.oid, PP_AUTH_ARC)]
    if auth and not policy.allow_authorization_extensions:
        raise CsrRefused(
            _listing(
                who,
                "an authorization extension, which is not allowed",
                "authorization extensions, which are not allowed",
                auth,
            )
        )

    for ext in extensions:
        if ext.oid == ExtensionOID.SUBJECT_ALTERNATIVE_NAME:
            _check_sans(list(ext.value), certname, policy, who)


def is_copyable(oid: x509.ObjectIdentifier) -> bool:
    """Extensions a CSR may carry at all (and sign_node may copy): SAN and pp_* arcs."""
    return oid == ExtensionOID.SUBJECT_ALTERNATIVE_NAME or any(
        under(oid, arc) for arc in (PP_REGISTERED_ARC, PP_PRIVATE_ARC, PP_AUTH_ARC)
    )


def _check_sans(names: list[x509.GeneralName], certname: str, policy: CsrPolicy, who: str) -> None:
    if not policy.allow_subject_alt_names:
        # Only the certname itself may be repeated as a SAN: it adds nothing.
        others = [n for n in names if n != x509.DNSName(certname)]
        if others:
            raise CsrRefused(
                f"{who} contains subject alternative names other than DNS:{certname}, which are "
                f"not allowed: " + ", ".join(format_general_name(n) for n in others)
            )
        return
    # Even when allowed, puppetserver takes only host names and addresses, never wildcards.
    odd = [n for n in names if not isinstance(n, (x509.DNSName, x509.IPAddress))]
    if odd:
        raise CsrRefused(
            f"{who} contains subject alternative names of a type that is not allowed (only DNS "
            f"and IP are): " + ", ".join(format_general_name(n) for n in odd)
        )
    wild = [n for n in names if isinstance(n, x509.DNSName) and "*" in n.value]
    if wild:
        raise CsrRefused(
            f"{who} contains wildcard subject alternative names, which are not allowed: "
            + ", ".join(format_general_name(n) for n in wild)
        )


def _listing(who: str, one: str, many: str, oids: list[x509.ObjectIdentifier]) -> str:
    what = one if len(oids) == 1 else many
    return f"{who} contains {what}: " + ", ".join(describe(o) for o in oids)
