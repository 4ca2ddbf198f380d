"""What every handler receives: who calls, and the wired dependencies."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping

from .ports import Clock, Engine, UnitOfWorkFactory


@dataclasses.dataclass(frozen=True)
class Caller:
    account_id: str
    region: str


@dataclasses.dataclass(frozen=True)
class Limits:
    servers_per_region: int = 10


@dataclasses.dataclass(frozen=True)
class Dependencies:
    uow: UnitOfWorkFactory
    engines: Mapping[str, Engine]
    clock: Clock
    # Wakes the job runner after a job was committed (a no-op is fine: it also polls).
    wake_jobs: Callable[[], None]
    # The host name DescribeServers reports as Endpoint when no CustomDomain is set.
    endpoint_host: str
    limits: Limits = Limits()

    def engine_for(self, engine_name: str) -> Engine:
        return self.engines[engine_name]
