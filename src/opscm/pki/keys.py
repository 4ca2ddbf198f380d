"""RSA keys for Chef clients, and password hashing.

check_rsa_public_key handles a key pasted by a person or passed through AWS-style user
data (`Value='<PEM>'`), so it is lenient about wrapping and strict about the key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from .errors import InvalidPublicKey

MAX_RSA_BITS = 16384  # bounds the cost of verifying this client's signatures
# A public exponent is odd, above 3 (e=3 keys invite low-exponent attacks) and below 2**256
# (NIST SP 800-56B's bound; a huge e makes every verification slow). openssl uses 65537.
MAX_RSA_EXPONENT_BITS = 256
_MAX_INPUT = 64 * 1024

_PEM_BLOCK = re.compile(r"-----BEGIN ([A-Z0-9 ]{1,40})-----(.*?)-----END \1-----", re.S)
_PUBLIC_LABELS = ("PUBLIC KEY", "RSA PUBLIC KEY")
# How cryptography writes a SubjectPublicKeyInfo PEM (what check_rsa_public_key returns).
_SPKI_HEAD, _SPKI_TAIL = "-----BEGIN PUBLIC KEY-----\n", "-----END PUBLIC KEY-----\n"
_HOW = "as printed by 'openssl rsa -in key.pem -pubout'"


def check_rsa_public_key(pem: str, *, min_bits: int = 2048) -> str:
    """Validate an RSA public key (SPKI or PKCS#1 PEM); return it as SubjectPublicKeyInfo PEM.

    Messages never quote the input: a pasted private key must not be echoed back.
    """
    if not isinstance(pem, str):
        raise InvalidPublicKey("The public key must be a PEM string")
    text = pem.strip()
    # Quotes that survived shell or user-data quoting, possibly nested ("'...'").
    while len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        text = text[1:-1].strip()
    if not text:
        raise InvalidPublicKey("The public key is empty")
    if len(text) > _MAX_INPUT:
        raise InvalidPublicKey(
            f"The public key is {len(text)} characters long; at most {_MAX_INPUT} are allowed"
        )

    blocks = _pem_blocks(text)
    if not blocks:
        if text.startswith("ssh-"):
            raise InvalidPublicKey(
                "The public key is in OpenSSH format; a PEM public key is required "
                "('-----BEGIN PUBLIC KEY-----', e.g. from 'ssh-keygen -e -m PKCS8 -f key.pub')"
            )
        if "PRIVATE KEY" in text:
            raise InvalidPublicKey(f"This is a private key; send only its public key ({_HOW})")
        raise InvalidPublicKey(
            f"The public key is not in PEM format: expected '-----BEGIN PUBLIC KEY-----' ({_HOW})"
        )
    if len(blocks) > 1:
        raise InvalidPublicKey(
            f"The value holds {len(blocks)} PEM blocks; exactly one public key is expected"
        )
    label, body, start, end = blocks[0]
    if "PRIVATE KEY" in label:
        raise InvalidPublicKey(f"This is a private key; send only its public key ({_HOW})")
    if label not in _PUBLIC_LABELS:
        raise InvalidPublicKey(
            f"The value is a PEM '{label}', not a public key: expected "
            f"'-----BEGIN PUBLIC KEY-----' ({_HOW})"
        )
    if text[:start].strip() or text[end:].strip():
        raise InvalidPublicKey("The public key has unexpected text before or after its PEM block")

    # Re-wrap the base64 body: tolerates CRLF, spaces for newlines, odd line lengths.
    body = "".join(body.split())
    try:
        der = binascii.a2b_base64(body, strict_mode=True)  # only the alphabet, padding only at the end
        key = _load_der(der, label)
    except (ValueError, binascii.Error, TypeError):
        raise InvalidPublicKey(
            f"The public key's '-----BEGIN {label}-----' block does not hold a valid key"
        ) from None

    if not isinstance(key, rsa.RSAPublicKey):
        raise InvalidPublicKey(f"The public key is {_kind(key)} key; an RSA key is required")
    if key.key_size < min_bits:
        raise InvalidPublicKey(
            f"The RSA public key is {key.key_size} bits; at least {min_bits} are required"
        )
    if key.key_size > MAX_RSA_BITS:
        raise InvalidPublicKey(
            f"The RSA public key is {key.key_size} bits; at most {MAX_RSA_BITS} are allowed"
        )
    _check_rsa_numbers(key.public_numbers())
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")


def _pem_blocks(text: str) -> list[tuple[str, str, int, int]]:
    """Each PEM block's (label, body, start, end). A lone public key block, as nearly every key
    comes, is found without the pattern (its lazy match and back-reference: a third of the check)."""
    for label in _PUBLIC_LABELS:
        head, tail = f"-----BEGIN {label}-----", f"-----END {label}-----"
        if (
            len(text) >= len(head) + len(tail)
            and text.startswith(head)
            and text.endswith(tail)
            and text.count("-----BEGIN ") == 1
            and text.count("-----END ") == 1
        ):
            return [(label, text[len(head) : -len(tail)], 0, len(text))]
    return [(m.group(1), m.group(2), m.start(), m.end()) for m in _PEM_BLOCK.finditer(text)]


def _check_rsa_numbers(numbers: rsa.RSAPublicNumbers) -> None:
    """What a real RSA key always has: an odd modulus, an odd exponent in a sane range."""
    if numbers.n % 2 == 0:
        raise InvalidPublicKey("The RSA public key's modulus is even: it is not a valid RSA key")
    e = numbers.e
    if e % 2 == 0:
        raise InvalidPublicKey("The RSA public key's public exponent is even: it is not a valid RSA key")
    if e <= 3:
        raise InvalidPublicKey(
            f"The RSA public key's public exponent is {e}; it must be greater than 3 (65537 is usual)"
        )
    if e.bit_length() > MAX_RSA_EXPONENT_BITS:
        raise InvalidPublicKey(
            f"The RSA public key's public exponent is {e.bit_length()} bits long; it must be below "
            f"2**{MAX_RSA_EXPONENT_BITS} (65537 is usual)"
        )


def _load_der(der: bytes, label: str):
    if label == "PUBLIC KEY":
        return serialization.load_der_public_key(der)
    # PKCS#1 RSAPublicKey has no DER loader of its own; its PEM form loads fine.
    b64 = base64.encodebytes(der).decode("ascii")
    return serialization.load_pem_public_key(
        f"-----BEGIN RSA PUBLIC KEY-----\n{b64}-----END RSA PUBLIC KEY-----\n".encode("ascii")
    )


def _kind(key: object) -> str:
    if isinstance(key, ec.EllipticCurvePublicKey):
        return "an EC"
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "an Ed25519"
    if isinstance(key, ed448.Ed448PublicKey):
        return "an Ed448"
    if isinstance(key, dsa.DSAPublicKey):
        return "a DSA"
    return "a non-RSA"


def generate_rsa_key(bits: int = 2048) -> tuple[str, str]:
    """A new key pair as Chef uses it: (PKCS#1 private PEM, SubjectPublicKeyInfo public PEM)."""
    if not isinstance(bits, int) or bits < 2048:
        raise ValueError("bits must be at least 2048")
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private.decode("ascii"), public.decode("ascii")


# scrypt N=2^15, r=8, p=1: 32 MiB and ~0.1 s per hash. Stored in the PHC string format,
# "$scrypt$ln=15,r=8,p=1$<salt>$<hash>" (unpadded base64), so parameters can change later
# without invalidating stored hashes.
_LOG_N, _R, _P = 15, 8, 1
_SALT_BYTES, _HASH_BYTES = 16, 32
_MAX_MEMORY = 256 * 1024 * 1024
_PHC = re.compile(r"\$scrypt\$ln=(\d{1,2}),r=(\d{1,2}),p=(\d{1,2})\$([A-Za-z0-9+/]+)\$([A-Za-z0-9+/]+)")


def hash_password(password: str) -> str:
    salt = os.urandom(_SALT_BYTES)
    digest = _scrypt(password, salt, _LOG_N, _R, _P, _HASH_BYTES)
    return f"$scrypt$ln={_LOG_N},r={_R},p={_P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, hashed: str) -> bool:
    """True if ``password`` matches; False for a wrong password or an unreadable hash."""
    m = _PHC.fullmatch(hashed) if isinstance(hashed, str) else None
    if m is None or not isinstance(password, str):
        return False
    log_n, r, p = (int(g) for g in m.groups()[:3])
    # Bounds stop a tampered hash string from demanding gigabytes of memory or minutes.
    if not (1 <= log_n and 1 <= r and 1 <= p <= 16 and 128 * r * 2**log_n <= _MAX_MEMORY):
        return False
    try:
        salt, expected = _unb64(m.group(4)), _unb64(m.group(5))
    except (ValueError, binascii.Error):
        return False
    if not 16 <= len(expected) <= 64:
        return False
    actual = _scrypt(password, salt, log_n, r, p, len(expected))
    return hmac.compare_digest(actual, expected)


def _scrypt(password: str, salt: bytes, log_n: int, r: int, p: int, length: int) -> bytes:
    return Scrypt(salt=salt, length=length, n=2**log_n, r=r, p=p).derive(password.encode("utf-8"))


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def public_key_fingerprint(public_key_pem: str) -> str:
    """SHA-256 of the key's SubjectPublicKeyInfo DER, in hex: how a registered key is named."""
    key = serialization.load_pem_public_key(public_key_pem.encode("ascii"))
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


def checked_key_fingerprint(checked_pem: str) -> str:
    """:func:`public_key_fingerprint` of a PEM that :func:`check_rsa_public_key` returned, without
    parsing the key again: that PEM is cryptography's own encoding, so its DER is canonical."""
    # The decoder skips the newlines of the body.
    return hashlib.sha256(binascii.a2b_base64(checked_pem[len(_SPKI_HEAD) : -len(_SPKI_TAIL)])).hexdigest()
