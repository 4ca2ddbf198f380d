"""What every handler receives: who calls, and the wired dependencies."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping

from .pagination import PageTokens
from .ports import BackupStorage, Clock, Engine, UnitOfWorkFactory


@dataclasses.dataclass(frozen=True)
class Caller:
    account_id: str
    region: str
    # Servers an access key may touch; None: all of the account's.
    server_names: tuple[str, ...] | None = None

    def may_touch(self, server_name: str) -> bool:
        return self.server_names is None or server_name in self.server_names


@dataclasses.dataclass(frozen=True)
class Limits:
    servers_per_region: int = 10
    manual_backups_per_region: int = 50


@dataclasses.dataclass(frozen=True)
class Dependencies:
    uow: UnitOfWorkFactory
    engines: Mapping[str, Engine]
    clock: Clock
    # Wakes the job runner after a job was committed (a no-op is fine: it also polls).
    wake_jobs: Callable[[], None]
    # The host name DescribeServers reports as Endpoint when no CustomDomain is set.
    endpoint_host: str
    page_tokens: PageTokens
    # Where backup snapshots are kept (sealed).
    backup_storage: BackupStorage
    limits: Limits = Limits()
    # The opscm API URL nodes call (written into user data scripts and starter kits).
    api_url: str = "http://127.0.0.1:4580"

    def engine_for(self, engine_name: str) -> Engine:
        return self.engines[engine_name]
