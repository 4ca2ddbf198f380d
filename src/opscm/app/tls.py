"""opscm's own TLS certificate: the operator's files (``--tls-cert``/``--tls-key``), or a
self-signed one made once and kept in the data dir (``--tls-self-signed``).

A self-signed certificate is its own trust anchor: clients trust exactly it (``AWS_CA_BUNDLE``,
boto3's ``verify=``), and user data scripts embed it so nodes talk to no other server.
"""

from __future__ import annotations

import dataclasses
import datetime
import ipaddress
import ssl
from collections.abc import Iterable
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .files import read_private_file, replace_private_file

SELF_SIGNED_CERT = "tls-cert.pem"
SELF_SIGNED_KEY = "tls-key.pem"
VALIDITY = datetime.timedelta(days=825)  # the longest a TLS client accepts for a server certificate
RENEW_BEFORE = datetime.timedelta(days=30)
_SPKI = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


class TlsError(Exception):
    """The certificate or key cannot be used; the message says what to fix (never key material)."""


@dataclasses.dataclass(frozen=True)
class TlsFiles:
    cert: Path
    key: Path = dataclasses.field(repr=False)
    self_signed: bool

    def ca_pem(self) -> str | None:
        """What clients must trust for opscm's API when no public CA signed it; else None."""
        return self.cert.read_text(encoding="ascii") if self.self_signed else None

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            context.load_cert_chain(self.cert, self.key)
        except (OSError, ssl.SSLError) as error:
            reason = getattr(error, "strerror", None) or getattr(error, "reason", None) or str(error)
            raise TlsError(f"cannot use the TLS certificate {self.cert} with the key {self.key}: {reason}") from None
        return context


def operator_files(cert: Path, key: Path) -> TlsFiles:
    """The operator's pair, checked at start (before any worker forks) with a message that says
    which file is wrong."""
    try:
        certificates = x509.load_pem_x509_certificates(Path(cert).read_bytes())
    except OSError as error:
        raise TlsError(f"cannot read the TLS certificate {cert}: {(error.strerror or str(error)).lower()}") from None
    except ValueError:
        raise TlsError(f"the TLS certificate {cert} is not a PEM certificate") from None
    try:
        private_key = serialization.load_pem_private_key(Path(key).read_bytes(), None)
    except OSError as error:
        raise TlsError(f"cannot read the TLS key {key}: {(error.strerror or str(error)).lower()}") from None
    except (ValueError, TypeError):
        raise TlsError(f"the TLS key {key} is not an unencrypted PEM private key") from None
    if private_key.public_key().public_bytes(*_SPKI) != certificates[0].public_key().public_bytes(*_SPKI):
        raise TlsError(f"the TLS key {key} is not the key of the certificate {cert}")
    files = TlsFiles(Path(cert), Path(key), self_signed=False)
    files.server_context()
    return files


def self_signed(data_dir: Path, names: Iterable[str], now: datetime.datetime | None = None) -> TlsFiles:
    """The data dir's self-signed certificate, made on first use and kept while it covers
    ``names`` (host names and IP addresses) and is not about to expire."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    wanted = _alt_names(names)
    cert_path, key_path = Path(data_dir) / SELF_SIGNED_CERT, Path(data_dir) / SELF_SIGNED_KEY
    files = TlsFiles(cert_path, key_path, self_signed=True)
    if cert_path.exists() and key_path.exists() and _still_good(cert_path, wanted, now):
        return files
    key = ec.generate_private_key(ec.SECP256R1())
    try:
        replace_private_file(key_path, key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ))
        cert_path.write_bytes(_certificate(key, wanted, now).public_bytes(serialization.Encoding.PEM))
    except OSError as error:
        raise TlsError(f"cannot write the self-signed TLS certificate in {data_dir}: {(error.strerror or str(error)).lower()}") from None
    return files


def _still_good(cert_path: Path, wanted: list[x509.GeneralName], now: datetime.datetime) -> bool:
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        # A planted link is replaced, never read; a key left by an interrupted start is replaced.
        key = serialization.load_pem_private_key(read_private_file(cert_path.with_name(SELF_SIGNED_KEY)), None)
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (OSError, ValueError, TypeError, x509.ExtensionNotFound):
        return False
    same_key = key.public_key().public_bytes(*_SPKI) == cert.public_key().public_bytes(*_SPKI)
    return same_key and set(wanted) <= set(names) and cert.not_valid_after_utc - now > RENEW_BEFORE


def _alt_names(names: Iterable[str]) -> list[x509.GeneralName]:
    found: list[x509.GeneralName] = []
    for name in dict.fromkeys(n.strip("[]") for n in names if n and n not in ("0.0.0.0", "::")):
        try:
            entry: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(name))
        except ValueError:
            entry = x509.DNSName(name.lower())
        found.append(entry)
    return found


def _certificate(key: ec.EllipticCurvePrivateKey, names: list[x509.GeneralName], now: datetime.datetime) -> x509.Certificate:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "opscm API (self-signed)")])
    public = key.public_key()
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, key_cert_sign=False, crl_sign=False, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        # Both identifiers: strict verifiers (Python 3.13's default context) want the AKI.
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
