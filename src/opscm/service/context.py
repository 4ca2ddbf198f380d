"""What every handler receives: who calls, and the wired dependencies."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping

from opscm.domain.errors import InvalidState, ValidationFailed
from opscm.domain.nodes import BACKEND
from opscm.domain.servers import Server

from .pagination import PageTokens
from .ports import BackupStorage, Clock, Engine, NoTelemetry, Telemetry, UnitOfWorkFactory
from .recent_answers import RecentAnswers
from .retention import Retention
from .server_cache import ServerCache


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
    # A remote engine's node change: how long the request itself works on it before the job
    # runner may take over, and how long retries go on before the change is FAILED.
    remote_attempt_seconds: float = 30.0
    remote_retry_seconds: float = 300.0


@dataclasses.dataclass(frozen=True)
class Dependencies:
    uow: UnitOfWorkFactory
    # The built-in engine of each engine name ("Puppet", "ChefAutomate").
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
    # The operator's backends by name (the configuration file), each an engine of its own.
    backends: Mapping[str, Engine] = dataclasses.field(default_factory=dict)
    server_cache: ServerCache | None = None
    retention: Retention = Retention()
    api_ca_pem: str | None = None  # opscm's self-signed API certificate, pinned by user data
    telemetry: Telemetry = NoTelemetry()  # counts node changes for the metrics
    # This process's own node changes, for the poll that follows each (see recent_answers).
    recent_answers: RecentAnswers = dataclasses.field(default_factory=RecentAnswers)

    def engine_for_new(self, server: Server) -> Engine:
        """The engine a new server asks for (its OPSCM_BACKEND), checked against the configuration."""
        if server.backend is None:
            return self.engines[server.engine.engine]
        engine = self.backends.get(server.backend)
        if engine is None:
            known = ", ".join(sorted(self.backends)) or "none is configured"
            raise ValidationFailed(f"{BACKEND} '{server.backend}' is not a backend of this opscm ({known}).")
        if engine.engine != server.engine.engine:
            raise ValidationFailed(
                f"Backend '{server.backend}' serves {engine.engine} servers, not {server.engine.engine}."
            )
        return engine

    def engine_for(self, server: Server) -> Engine:
        if server.backend is None:
            return self.engines[server.engine.engine]
        engine = self.backends.get(server.backend)
        if engine is None:
            raise InvalidState(
                f"Server {server.name} is served by backend '{server.backend}', which opscm's configuration no longer has."
            )
        return engine
