"""Servers: engines offered, states, and the rules of CreateServer / DeleteServer."""

from __future__ import annotations

import dataclasses
import enum
from datetime import datetime
from typing import Any

from .errors import InvalidState, ValidationFailed
from .nodes import NodeNamePolicy


class ServerStatus(enum.StrEnum):
    BACKING_UP = "BACKING_UP"
    CONNECTION_LOST = "CONNECTION_LOST"
    CREATING = "CREATING"
    DELETING = "DELETING"
    MODIFYING = "MODIFYING"
    FAILED = "FAILED"
    HEALTHY = "HEALTHY"
    RUNNING = "RUNNING"
    RESTORING = "RESTORING"
    SETUP = "SETUP"
    UNDER_MAINTENANCE = "UNDER_MAINTENANCE"
    UNHEALTHY = "UNHEALTHY"
    TERMINATED = "TERMINATED"


@dataclasses.dataclass(frozen=True)
class EngineChoice:
    engine: str
    model: str
    version: str


# Engine -> EngineModel -> versions; the first of each is the default, as on AWS.
SUPPORTED_ENGINES: dict[str, dict[str, tuple[str, ...]]] = {
    "ChefAutomate": {"Single": ("2",)},
    "Puppet": {"Monolithic": ("2019", "2017")},
}


S = ServerStatus
# Which states allow what, as the OpsWorks CM API reference documents it.
ASSOCIATION_STATES = (S.HEALTHY,)
BACKUP_STATES = (S.RUNNING, S.HEALTHY, S.UNHEALTHY)
MAINTENANCE_STATES = (S.HEALTHY, S.UNHEALTHY)
ENGINE_UPDATE_STATES = (S.HEALTHY, S.UNHEALTHY)
RESTORE_STATES = (S.CONNECTION_LOST, S.HEALTHY, S.RUNNING, S.UNHEALTHY, S.TERMINATED)
EXPORT_REFUSED_STATES = (S.CREATING, S.TERMINATED, S.FAILED, S.DELETING)
# States a server returns to after a backup or maintenance, and that health checks may flip.
SETTLED_STATES = (S.HEALTHY, S.UNHEALTHY, S.RUNNING)


def choose_engine(engine: str, model: str | None, version: str | None) -> EngineChoice:
    models = SUPPORTED_ENGINES.get(engine)
    if models is None:
        raise ValidationFailed(f"Engine '{engine}' is not supported; choose one of: {', '.join(SUPPORTED_ENGINES)}.")
    model = model or next(iter(models))
    versions = models.get(model)
    if versions is None:
        raise ValidationFailed(
            f"EngineModel '{model}' is not valid for engine {engine}; choose one of: {', '.join(models)}."
        )
    version = version or versions[0]
    if version not in versions:
        raise ValidationFailed(
            f"EngineVersion '{version}' is not valid for {engine} {model}; choose one of: {', '.join(versions)}."
        )
    return EngineChoice(engine, model, version)


def server_arn(region: str, account_id: str, name: str, server_id: str) -> str:
    return f"arn:aws:opsworks-cm:{region}:{account_id}:server/{name}/{server_id}"


@dataclasses.dataclass
class Server:
    id: str
    account_id: str
    region: str
    name: str
    engine: EngineChoice
    status: ServerStatus
    created_at: datetime
    endpoint: str
    status_reason: str | None = None
    # Settings AWS echoes back (instance type, windows, subnets...), keyed by the model's member names.
    settings: dict[str, Any] = dataclasses.field(default_factory=dict)
    # Engine's own non-secret state (e.g. a hash of the admin password, the pivotal public key).
    engine_data: dict[str, Any] = dataclasses.field(default_factory=dict)
    maintenance_status: str | None = None  # SUCCESS / FAILED of the last maintenance
    last_automated_backup_at: datetime | None = None
    last_maintenance_at: datetime | None = None
    # The operator's backend serving this server's engine; None: opscm's built-in engine.
    backend: str | None = None
    node_name_policy: NodeNamePolicy = NodeNamePolicy.UNIQUE
    # Bumped by the store at every save; a cached copy is current while its revision is.
    revision: int = 0

    @property
    def arn(self) -> str:
        return server_arn(self.region, self.account_id, self.name, self.id)

    def own_names(self) -> tuple[str, ...]:
        """Host names the server answers to: never a node's."""
        return tuple(n for n in (self.endpoint, self.settings.get("CustomDomain")) if n)

    def require_status(self, *allowed: ServerStatus, action: str) -> None:
        if self.status not in allowed:
            raise InvalidState(
                f"{action} is not allowed for server {self.name} in state {self.status}; "
                f"it needs {' or '.join(allowed)}."
            )

    def refuse_status(self, *refused: ServerStatus, action: str) -> None:
        if self.status in refused:
            raise InvalidState(f"{action} is not allowed for server {self.name} in state {self.status}.")

    def enter(self, status: ServerStatus, reason: str | None = None) -> ServerStatus:
        """Move to a transient state; returns the state to go back to afterwards."""
        previous = self.status
        self.status = status
        self.status_reason = reason
        return previous

    def begin_deletion(self) -> None:
        if self.status == ServerStatus.DELETING:
            raise InvalidState(f"Server {self.name} is already being deleted (state DELETING).")
        self.status = ServerStatus.DELETING
        self.status_reason = None

    def finish_creation(self) -> None:
        self.status = ServerStatus.HEALTHY
        self.status_reason = None

    def fail(self, reason: str) -> None:
        self.status = ServerStatus.FAILED
        self.status_reason = reason
