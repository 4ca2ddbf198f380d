"""Loaded CA signers, kept per server (a signature with a 4096-bit key costs ~3 ms; loading the
key, a sealed one whose consistency OpenSSL need not check again, well under one). A signer is
kept for one CA certificate: a restore that brings another CA changes the certificate, and the
next use loads the new key.

One thread loads a server's signer while the others wait for it: a boot storm that meets a
process with nothing loaded yet (just started, or just restored) would otherwise load it once
per request thread at the same moment."""

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
        self._loading: dict[str, threading.Lock] = {}  # server id -> held by the thread loading it

    def get(self, server_id: str, cert_pem: str, load: Callable[[], CaSigner]) -> CaSigner:
        """The signer of this server's CA certificate ``cert_pem``; ``load`` makes it when missing."""
        signer = self._cached(server_id, cert_pem)
        if signer is not None:
            return signer
        with self._lock:
            loading = self._loading.setdefault(server_id, threading.Lock())
        with loading:
            signer = self._cached(server_id, cert_pem)  # loaded while this thread waited
            if signer is None:
                signer = load()
                self.put(server_id, cert_pem, signer)
        return signer

    def _cached(self, server_id: str, cert_pem: str) -> CaSigner | None:
        with self._lock:
            cached = self._signers.get(server_id)
            if cached is None or cached[0] != cert_pem:
                return None
            self._signers.move_to_end(server_id)
            return cached[1]

    def put(self, server_id: str, cert_pem: str, signer: CaSigner) -> None:
        with self._lock:
            self._signers[server_id] = (cert_pem, signer)
            self._signers.move_to_end(server_id)
            while len(self._signers) > self._capacity:
                self._signers.popitem(last=False)

    def forget(self, server_id: str) -> None:
        with self._lock:
            self._signers.pop(server_id, None)
            self._loading.pop(server_id, None)
