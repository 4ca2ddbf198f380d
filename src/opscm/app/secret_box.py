"""Secrets at rest (CA keys, access key secrets) sealed with AES-256-GCM under a master key.

The master key lives in ``master.key`` in the data dir (mode 0600), or comes from
``OPSCM_MASTER_KEY`` (base64) so that several replicas on one database share it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .files import read_private_file, write_private_file

_VERSION = b"\x01"
_NONCE_BYTES = 12


class AesGcmBox:
    def __init__(self, key: bytes):
        if len(key) != 32:
            raise ValueError("the master key must be 32 bytes")
        self._aead = AESGCM(key)

    def seal(self, plaintext: bytes) -> bytes:
        nonce = os.urandom(_NONCE_BYTES)
        return _VERSION + nonce + self._aead.encrypt(nonce, plaintext, _VERSION)

    def open(self, sealed: bytes) -> bytes:
        if sealed[:1] != _VERSION:
            raise ValueError("unknown sealed-secret format")
        nonce = sealed[1 : 1 + _NONCE_BYTES]
        try:
            return self._aead.decrypt(nonce, sealed[1 + _NONCE_BYTES :], _VERSION)
        except InvalidTag:
            raise ValueError("the sealed secret does not open: damaged, or sealed with another key") from None


def derive_key(master_key: bytes, purpose: str) -> bytes:
    """A separate key per purpose (page tokens, ...), so no key serves two algorithms."""
    return hmac.new(master_key, f"opscm:{purpose}".encode(), hashlib.sha256).digest()


class MasterKeyError(Exception):
    """The master key is unusable, or not the one the store's secrets were sealed with; the
    message says which (never the key)."""


def load_master_key(data_dir: Path | None) -> bytes:
    from_env = os.environ.get("OPSCM_MASTER_KEY")
    if from_env:
        return _decoded(from_env.encode(), "OPSCM_MASTER_KEY")
    if data_dir is None:
        return AESGCM.generate_key(bit_length=256)  # in-memory stores live only as long as the process
    path = Path(data_dir) / "master.key"
    try:
        write_private_file(path, base64.b64encode(AESGCM.generate_key(bit_length=256)) + b"\n")
    except FileExistsError:
        pass  # made at an earlier start (or by a process starting with this one)
    return _decoded(read_private_file(path).strip(), str(path))


def _decoded(text: bytes, where: str) -> bytes:
    try:
        key = base64.b64decode(text, validate=True)
    except (ValueError, binascii.Error):
        key = b""
    if len(key) != 32:
        raise MasterKeyError(f"{where} is not a master key: 32 bytes in base64 (44 characters) are expected")
    return key


def check_master_key(box: AesGcmBox, sealed: bytes | None) -> None:
    """``sealed``: a secret of the store (the oldest access key's), None in a new store. A store
    opened with another master key than its own would answer every signed request with a 500."""
    if sealed is None:
        return
    try:
        box.open(sealed)
    except ValueError:
        raise MasterKeyError(
            "the master key does not open the secrets stored in this database: start with the master key they "
            "were sealed with (OPSCM_MASTER_KEY, or the data dir's master.key)"
        ) from None
