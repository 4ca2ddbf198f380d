"""The Puppet CA: creating one, and signing agent and server certificates and CRLs with it.

The certificate profile is exactly the one puppetserver 7 issues (see FACTS.md,
"Puppet CA"), so agents cannot tell our certificates from puppetserver's own.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID, NameOID

from .alt_names import parse_alt_names
from .certname import check_certname, quote
from .csr import ALLOWED_CURVES, MAX_RSA_BITS, MIN_RSA_BITS, CsrPolicy, check_extension_requests, signature_is_valid
from .errors import CsrRefused, InvalidPublicKey, PkiError
from .oids import NETSCAPE_COMMENT, PP_CLI_AUTH, PUPPET_COMMENT

# Puppet backdates notBefore by a day so agents with a slow clock accept new certificates;
# the CRL's lastUpdate is backdated the same way, or `crl_check` on such an agent would
# find a CRL that is "not yet valid".
BACKDATE = timedelta(days=1)
MAX_SERIAL = 2**159 - 1  # RFC 5280: at most 20 octets, positive

_CA_PREFIX = "Puppet CA: "
_CN_MAX = 64  # RFC 5280 ub-common-name


@dataclass(frozen=True)
class CaMaterial:
    """A new CA: the caller encrypts ``key_pem`` before storing it."""

    key_pem: bytes = field(repr=False)  # PKCS#8 PEM, unencrypted; kept out of repr/logs
    cert_pem: str


def create_ca(
    name: str, *, now: datetime, key_bits: int = 4096, ttl: timedelta = timedelta(days=15 * 365)
) -> CaMaterial:
    """A self-signed CA "Puppet CA: <name>" with a fresh RSA key, serial 1."""
    if not isinstance(name, str) or not name.strip():
        raise PkiError("The CA name must not be empty")
    if not name.isprintable() or name != name.strip():
        raise PkiError("The CA name must be printable and have no surrounding spaces")
    if len(_CA_PREFIX + name) > _CN_MAX:
        raise PkiError(
            f"The CA name is {len(name)} characters long; at most {_CN_MAX - len(_CA_PREFIX)} "
            f"are allowed"
        )
    if key_bits < 2048:
        raise ValueError("key_bits must be at least 2048")
    now = _utc(now, "now")
    _positive(ttl, "ttl")

    key = rsa.generate_private_key(public_exponent=65537, key_size=key_bits)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, _CA_PREFIX + name)])
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + ttl)
        .add_extension(_puppet_comment(), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            _key_usage(key_cert_sign=True, crl_sign=True),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    return CaMaterial(
        key_pem=key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        cert_pem=cert.public_bytes(serialization.Encoding.PEM).decode("ascii"),
    )


class CaSigner:
    """Owns the CA private key: nothing outside ever gets the key object or its PEM back."""

    __slots__ = ("_key", "_cert", "_cert_pem", "_aki")

    def __init__(self, key_pem: bytes, cert_pem: str, *, key_is_ours: bool = False):
        """``key_is_ours``: the key was made by :func:`create_ca` and has been kept where nobody
        could change it (sealed), so OpenSSL's check that its numbers are consistent (~350 ms of
        CPU for 4096 bits, every load) proves nothing and is skipped; that it matches the
        certificate is still checked."""
        try:
            key = serialization.load_pem_private_key(
                _bytes(key_pem), password=None, unsafe_skip_rsa_key_validation=key_is_ours
            )
        except TypeError:
            raise PkiError("The CA private key is encrypted; it must be decrypted first") from None
        except Exception:
            raise PkiError("The CA private key is not a PEM private key") from None
        if not isinstance(key, rsa.RSAPrivateKey):
            raise PkiError("The CA private key must be an RSA key")
        try:
            cert = x509.load_pem_x509_certificate(_bytes(cert_pem))
        except Exception:
            raise PkiError("The CA certificate is not a PEM certificate") from None
        spki = serialization.PublicFormat.SubjectPublicKeyInfo
        der = serialization.Encoding.DER
        if cert.public_key().public_bytes(der, spki) != key.public_key().public_bytes(der, spki):
            raise PkiError("The CA private key does not match the CA certificate")
        try:
            is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        except x509.ExtensionNotFound:
            is_ca = False
        if not is_ca:
            raise PkiError("The CA certificate is not a CA certificate (basicConstraints CA:TRUE)")
        # AKI of what we sign = the CA's own SKI as written in its certificate (an imported
        # CA may have computed it differently), else derived from its key.
        try:
            ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
            aki = x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)
        except x509.ExtensionNotFound:
            aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key())
        self._key = key
        self._cert = cert
        self._cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode("ascii")
        self._aki = aki

    @property
    def cert_pem(self) -> str:
        return self._cert_pem

    def __repr__(self) -> str:
        return f"CaSigner({self._cert.subject.rfc4514_string()!r})"

    def __reduce__(self):
        # Keep the key out of pickles, caches and deep copies.
        raise TypeError("CaSigner holds a private key and cannot be pickled or copied")

    def sign_node(
        self,
        csr: x509.CertificateSigningRequest,
        *,
        certname: str,
        serial: int,
        now: datetime,
        ttl: timedelta = timedelta(days=5 * 365),
        policy: CsrPolicy = CsrPolicy(),
        vetted: bool = False,
    ) -> str:
        """Sign an agent certificate for a CSR; return its PEM.

        The copy rules always apply, whoever calls: the CSR's SAN entries and ``pp_*``
        extensions are copied as *policy* allows them, and a CSR asking for anything else
        (basicConstraints, authorization extensions or SANs the policy forbids) is refused
        with check_csr's message, never silently trimmed. ``vetted=True`` says the caller ran
        ``check_csr``, so the CSR's signature is not verified a second time.
        """
        check_certname(certname)
        _check_serial(serial)
        now = _utc(now, "now")
        _positive(ttl, "ttl")
        if not vetted and not signature_is_valid(csr):
            who = f"CSR for {quote(certname)}"
            raise CsrRefused(f"{who} has an invalid signature: it was not signed by the key it contains")
        requested = check_extension_requests(csr, certname, policy)

        alt_names: list[x509.GeneralName] = []
        copied: list[x509.Extension] = []
        for ext in requested:
            if ext.oid == ExtensionOID.SUBJECT_ALTERNATIVE_NAME:
                alt_names += list(ext.value)
            else:
                copied.append(ext)  # a pp_* extension the policy allows

        builder = self._leaf(csr.public_key(), certname, alt_names, serial, now, ttl)
        for ext in copied:
            # Verbatim: same OID, same DER value, same criticality as requested.
            builder = builder.add_extension(_verbatim(ext), critical=ext.critical)
        return self._sign(builder)

    def sign_server(
        self,
        public_key_pem: str | bytes,
        *,
        certname: str,
        alt_names: Iterable[str],
        serial: int,
        now: datetime,
        ttl: timedelta = timedelta(days=5 * 365),
        cli_auth: bool = False,
    ) -> str:
        """The certificate a puppetserver (or another service) presents; returns its PEM.

        Same profile as an agent certificate (puppetserver's own certificate has it too),
        with SAN ``DNS:<certname>`` followed by ``alt_names`` (``["DNS:x", "IP:1.2.3.4"]``,
        see :func:`parse_alt_names`). ``cli_auth`` adds ``pp_cli_auth`` = "true" (an
        UTF8String, as puppetserver writes it), which Puppet's auth.conf grants CA
        administration: only for certificates that need it.
        """
        check_certname(certname)
        _check_serial(serial)
        now = _utc(now, "now")
        _positive(ttl, "ttl")
        public_key = _server_public_key(public_key_pem)
        builder = self._leaf(public_key, certname, parse_alt_names(alt_names), serial, now, ttl)
        if cli_auth:
            builder = builder.add_extension(
                x509.UnrecognizedExtension(PP_CLI_AUTH, _utf8_string("true")), critical=False
            )
        return self._sign(builder)

    def _leaf(
        self,
        public_key: CertificatePublicKeyTypes,
        certname: str,
        alt_names: list[x509.GeneralName],
        serial: int,
        now: datetime,
        ttl: timedelta,
    ) -> x509.CertificateBuilder:
        """The Puppet profile of an end-entity certificate; SAN ``DNS:<certname>`` first."""
        own_name = x509.DNSName(certname)
        names = [own_name] + [n for i, n in enumerate(alt_names) if n != own_name and n not in alt_names[:i]]
        return (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, certname)]))
            .issuer_name(self._cert.subject)
            .public_key(public_key)
            .serial_number(serial)
            .not_valid_before(now - BACKDATE)
            .not_valid_after(now + ttl)
            .add_extension(_puppet_comment(), critical=False)
            .add_extension(self._aki, critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=True,
            )
            .add_extension(
                _key_usage(digital_signature=True, key_encipherment=True), critical=True
            )
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
        )

    def _sign(self, builder: x509.CertificateBuilder) -> str:
        cert = builder.sign(self._key, hashes.SHA256())
        return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")

    def crl(
        self,
        revoked: Iterable[tuple[int, datetime]],
        *,
        number: int,
        now: datetime,
        next_update: timedelta = timedelta(days=5 * 365),
    ) -> str:
        """The CA's CRL listing ``revoked`` (serial, revocation time); returns its PEM."""
        if not isinstance(number, int) or isinstance(number, bool) or not 0 <= number <= MAX_SERIAL:
            raise ValueError("CRL number must be an integer between 0 and 2**159-1")
        now = _utc(now, "now")
        _positive(next_update, "next_update")
        # One entry per serial; if a serial comes twice, the first revocation counts.
        earliest: dict[int, datetime] = {}
        for serial, when in revoked:
            _check_serial(serial)
            when = _utc(when, "revocation time")
            if serial not in earliest or when < earliest[serial]:
                earliest[serial] = when
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self._cert.subject)
            .last_update(now - BACKDATE)
            .next_update(now + next_update)
            .add_extension(self._aki, critical=False)
            .add_extension(x509.CRLNumber(number), critical=False)
        )
        for serial in sorted(earliest):
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder()
                .serial_number(serial)
                .revocation_date(earliest[serial])
                .build()
            )
        crl = builder.sign(self._key, hashes.SHA256())
        return crl.public_bytes(serialization.Encoding.PEM).decode("ascii")


def _puppet_comment() -> x509.UnrecognizedExtension:
    # nsComment is an IA5String; cryptography has no class for it, so encode the DER here.
    text = PUPPET_COMMENT.encode("ascii")  # 34 bytes: short-form DER length
    return x509.UnrecognizedExtension(NETSCAPE_COMMENT, b"\x16" + bytes([len(text)]) + text)


def _utf8_string(text: str) -> bytes:
    raw = text.encode("utf-8")
    if len(raw) > 127:
        raise ValueError("only short-form DER lengths are encoded here")
    return b"\x0c" + bytes([len(raw)]) + raw


def _server_public_key(pem: str | bytes) -> CertificatePublicKeyTypes:
    """A server's public key (SubjectPublicKeyInfo PEM), held to the same rules as agents' keys."""
    data = _bytes(pem) if isinstance(pem, (str, bytes, bytearray)) else b""
    if b"PRIVATE KEY" in data:
        raise InvalidPublicKey("This is a private key; give the server's public key (PEM 'PUBLIC KEY')")
    try:
        key = serialization.load_pem_public_key(data.strip())
    except Exception:
        raise InvalidPublicKey("The server's public key is not a PEM public key ('PUBLIC KEY')") from None
    if isinstance(key, rsa.RSAPublicKey):
        if not MIN_RSA_BITS <= key.key_size <= MAX_RSA_BITS:
            raise InvalidPublicKey(
                f"The server's RSA key has {key.key_size} bits; {MIN_RSA_BITS} to {MAX_RSA_BITS} are allowed"
            )
        return key
    if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name in ALLOWED_CURVES:
        return key
    raise InvalidPublicKey(
        f"The server's key must be RSA ({MIN_RSA_BITS} bits or more) or EC ({', '.join(ALLOWED_CURVES)})"
    )


def _key_usage(**set_bits: bool) -> x509.KeyUsage:
    bits = dict.fromkeys(
        (
            "digital_signature", "content_commitment", "key_encipherment", "data_encipherment",
            "key_agreement", "key_cert_sign", "crl_sign", "encipher_only", "decipher_only",
        ),
        False,
    )
    bits.update(set_bits)
    return x509.KeyUsage(**bits)


def _verbatim(ext: x509.Extension) -> x509.ExtensionType:
    if isinstance(ext.value, x509.UnrecognizedExtension):
        return ext.value
    # Should cryptography ever learn a pp_* OID, fall back to its DER encoding.
    return x509.UnrecognizedExtension(ext.oid, ext.value.public_bytes())


def _utc(when: datetime, what: str) -> datetime:
    # Naive datetimes are refused rather than guessed: a local-time mix-up would shift
    # every validity window silently.
    if not isinstance(when, datetime) or when.tzinfo is None or when.utcoffset() is None:
        raise ValueError(f"{what} must be a timezone-aware datetime")
    return when.astimezone(timezone.utc)


def _positive(delta: timedelta, what: str) -> None:
    if not isinstance(delta, timedelta) or delta <= timedelta(0):
        raise ValueError(f"{what} must be a positive timedelta")


def _check_serial(serial: int) -> None:
    if not isinstance(serial, int) or isinstance(serial, bool) or not 1 <= serial <= MAX_SERIAL:
        raise ValueError("serial must be an integer between 1 and 2**159-1")


def _bytes(pem: str | bytes) -> bytes:
    return pem.encode("ascii", "replace") if isinstance(pem, str) else bytes(pem)
