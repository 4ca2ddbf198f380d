"""Loaded CA signers, kept per server: loading (and validating) a 4096-bit key costs ~250 ms,
signing with it ~3 ms, and the load would otherwise happen inside each signing transaction."""

from __future__ import annotations

import collections
import threading

from opscm.pki import CaSigner


class SignerCache:
    def __init__(self, capacity: int = 256):
        self._capacity = capacity
        self._lock = threading.Lock()
        self._signers: collections.OrderedDict[str, tuple[bytes, str, CaSigner]] = collections.OrderedDict()

    def get(self, server_id: str, key_enc: bytes, cert_pem: str, load) -> CaSigner:
        """The signer for this exact sealed key and certificate (a restore changes them)."""
        with self._lock:
            cached = self._signers.get(server_id)
            if cached is not None and cached[0] == key_enc and cached[1] == cert_pem:
                self._signers.move_to_end(server_id)
                return cached[2]
        signer = load()
        with self._lock:
            self._signers[server_id] = (key_enc, cert_pem, signer)
            self._signers.move_to_end(server_id)
            while len(self._signers) > self._capacity:
                self._signers.popitem(last=False)
        return signer

    def forget(self, server_id: str) -> None:
        with self._lock:
            self._signers.pop(server_id, None)
