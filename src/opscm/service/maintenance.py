"""StartMaintenance and the maintenance job: real upkeep of the engine, recorded as events."""

from __future__ import annotations

import logging

from opscm.domain.errors import ValidationFailed
from opscm.domain.servers import MAINTENANCE_STATES, Server, ServerStatus

from .context import Caller, Dependencies
from .backups import failure_reason
from .ports import UnitOfWork
from .servers import require_server
from .views import described

log = logging.getLogger(__name__)


def start_maintenance(deps: Dependencies, uow: UnitOfWork, server: Server) -> None:
    server.require_status(*MAINTENANCE_STATES, action="StartMaintenance")
    now = deps.clock.now()
    resume = server.enter(ServerStatus.UNDER_MAINTENANCE)
    uow.servers.save(server)
    uow.events.add(server.id, now, f"Maintenance of server {server.name} started.")
    uow.jobs.add("maintenance", server.id, now, {"resume_status": str(resume)})


def start_maintenance_operation(deps: Dependencies, caller: Caller, params: dict) -> dict:
    if params.get("EngineAttributes"):
        # AWS documents no engine attribute for StartMaintenance on these engine versions.
        raise ValidationFailed("StartMaintenance takes no engine attributes for this server.")
    with deps.uow() as uow:
        server = require_server(uow, caller, params["ServerName"])
        start_maintenance(deps, uow, server)
        server.last_maintenance_at = deps.clock.now()
        uow.servers.save(server)
        uow.commit()
    deps.wake_jobs()
    return {"Server": described(deps, server)}


def run_maintenance(deps: Dependencies, server_id: str, payload: dict) -> None:
    try:
        with deps.uow(read_only=True) as uow:
            server = uow.servers.get_by_id(server_id)
        if server is None or server.status is not ServerStatus.UNDER_MAINTENANCE:
            return
        # The engine's upkeep runs its own short transactions (a CRL is signed outside them).
        done = deps.engine_for(server).maintain(server)
    except Exception as error:  # noqa: BLE001 - a failed upkeep is rolled back; the server stays usable
        log.exception("maintenance of server %s failed", server_id)
        _finish(deps, server_id, payload, status="FAILED", messages=[f"Maintenance failed: {failure_reason(error)}"])
        return
    _finish(deps, server_id, payload, status="SUCCESS", messages=[*done, "Maintenance completed."])


def _finish(deps: Dependencies, server_id: str, payload: dict, *, status: str, messages: list[str]) -> None:
    with deps.uow() as uow:
        server = uow.servers.get_by_id(server_id)
        if server is None:
            return
        server.status = ServerStatus(payload.get("resume_status", ServerStatus.HEALTHY))
        server.maintenance_status = status
        uow.servers.save(server)
        for message in messages:
            uow.events.add(server.id, deps.clock.now(), message)
        uow.commit()
