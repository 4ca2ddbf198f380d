"""Secrets at rest (CA keys, access key secrets) sealed with AES-256-GCM under a master key.

The master key lives in ``master.key`` in the data dir (mode 0600), or comes from
``OPSCM_MASTER_KEY`` (base64) so that several replicas on one database share it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from pathlib import Path

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
        return self._aead.decrypt(nonce, sealed[1 + _NONCE_BYTES :], _VERSION)


def derive_key(master_key: bytes, purpose: str) -> bytes:
    """A separate key per purpose (page tokens, ...), so no key serves two algorithms."""
    return hmac.new(master_key, f"opscm:{purpose}".encode(), hashlib.sha256).digest()


def load_master_key(data_dir: Path | None) -> bytes:
    from_env = os.environ.get("OPSCM_MASTER_KEY")
    if from_env:
        return base64.b64decode(from_env)
    if data_dir is None:
        return AESGCM.generate_key(bit_length=256)  # in-memory stores live only as long as the process
    path = Path(data_dir) / "master.key"
    try:
        write_private_file(path, base64.b64encode(AESGCM.generate_key(bit_length=256)) + b"\n")
    except FileExistsError:
        pass  # made at an earlier start (or by a process starting with this one)
    return base64.b64decode(read_private_file(path).strip())
