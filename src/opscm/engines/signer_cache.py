"""Loaded CA signers, kept per server: loading (and validating) a 4096-bit key costs ~250 ms,
signing with it ~3 ms. A signer is kept for one CA certificate: a restore that brings another
CA changes the certificate, and the next use loads the new key."""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable

from opscm.pki import CaSigner


class SignerCache:
    def __init__(self, capacity: int = 256):
        self._capacity = capacity
        self._lock = threading.Lock()
        self._signers: collections.OrderedDict[str, tuple[str, CaSigner]] = collections.OrderedDict()

    def get(self, server_id: str, cert_pem: str, load: Callable[[], CaSigner]) -> CaSigner:
        """The signer of this server's CA certificate ``cert_pem``; ``load`` makes it when missing."""
        with self._lock:
            cached = self._signers.get(server_id)
            if cached is not None and cached[0] == cert_pem:
                self._signers.move_to_end(server_id)
                return cached[1]
        signer = load()
        self.put(server_id, cert_pem, signer)
        return signer

    def put(self, server_id: str, cert_pem: str, signer: CaSigner) -> None:
        with self._lock:
            self._signers[server_id] = (cert_pem, signer)
            self._signers.move_to_end(server_id)
            while len(self._signers) > self._capacity:
                self._signers.popitem(last=False)

    def forget(self, server_id: str) -> None:
        with self._lock:
            self._signers.pop(server_id, None)
