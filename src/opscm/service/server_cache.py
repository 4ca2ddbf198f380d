"""Server rows kept in the process for the association hot path.

A cached row is only a guess: the association transaction reads the server's status and
revision (``ServerRepository.current``) and starts again from a fresh row when they differ.
Rows are kept at most ``ttl`` seconds; names that do not exist are never cached.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from opscm.domain.servers import Server

from .ports import StaleServer, UnitOfWork, UnitOfWorkFactory


def check_current(uow: UnitOfWork, server: Server) -> None:
    """Inside a change's transaction: the server is still the row the change was made for
    (its status and revision are then held until the transaction ends)."""
    current = uow.servers.current(server.id)
    if current is None or current[1] != server.revision:
        raise StaleServer()


class ServerCache:
    def __init__(self, uow: UnitOfWorkFactory, ttl: float = 2.0, monotonic: Callable[[], float] = time.monotonic):
        self._uow = uow
        self._ttl = ttl
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._rows: dict[tuple[str, str, str], tuple[float, Server]] = {}

    def get(self, account_id: str, region: str, name: str) -> Server | None:
        cached = self.peek(account_id, region, name)
        return cached if cached is not None else self.reload(account_id, region, name)

    def peek(self, account_id: str, region: str, name: str) -> Server | None:
        """The cached row if it is fresh, else None: never a database read."""
        with self._lock:
            cached = self._rows.get((account_id, region, name))
        if cached is not None and self._monotonic() - cached[0] < self._ttl:
            return cached[1]
        return None

    def reload(self, account_id: str, region: str, name: str) -> Server | None:
        key = (account_id, region, name)
        read_at = self._monotonic()  # the row is at most as fresh as the read's start
        with self._uow(read_only=True) as uow:
            server = uow.servers.get(account_id, region, name)
        with self._lock:
            cached = self._rows.get(key)
            if server is None:
                self._rows.pop(key, None)
            elif cached is not None and cached[1].id == server.id and cached[1].revision > server.revision:
                server = cached[1]  # a concurrent reload read a newer revision: it stays
            else:
                self._rows[key] = (read_at, server)
        return server

    def clear(self) -> None:
        with self._lock:
            self._rows.clear()
