"""UpdateServer (settings, synchronous) and UpdateServerEngineAttributes (one at a time, MODIFYING)."""

from __future__ import annotations

from opscm.domain.errors import ValidationFailed
from opscm.domain.nodes import BACKEND, NODE_NAME_POLICY, NodeNamePolicy, parse_policy
from opscm.domain.servers import ENGINE_UPDATE_STATES, ServerStatus
from opscm.domain.windows import check_window

from .context import Caller, Dependencies
from .servers import require_server
from .views import described

UPDATABLE_SETTINGS = ("DisableAutomatedBackup", "BackupRetentionCount", "PreferredMaintenanceWindow", "PreferredBackupWindow")


def update_server(deps: Dependencies, caller: Caller, params: dict) -> dict:
    for window in ("PreferredMaintenanceWindow", "PreferredBackupWindow"):
        if window in params:
            check_window(params[window])
    if "BackupRetentionCount" in params and params["BackupRetentionCount"] < 1:
        raise ValidationFailed("BackupRetentionCount must be at least 1.")
    with deps.uow() as uow:
        server = require_server(uow, caller, params["ServerName"])
        server.refuse_status(ServerStatus.DELETING, action="UpdateServer")
        changes = {k: params[k] for k in UPDATABLE_SETTINGS if k in params}
        server.settings.update(changes)
        uow.servers.save(server)
        if changes:
            listed = ", ".join(f"{k}={v}" for k, v in changes.items())
            uow.events.add(server.id, deps.clock.now(), f"Server settings updated: {listed}.")
        uow.commit()
    return {"Server": described(deps, server)}


def update_server_engine_attributes(deps: Dependencies, caller: Caller, params: dict) -> dict:
    name, value = params["AttributeName"], params.get("AttributeValue")
    if name == BACKEND:
        raise ValidationFailed(f"{BACKEND} is chosen when a server is created and cannot be changed.")
    if name == NODE_NAME_POLICY:
        return _set_node_name_policy(deps, caller, params["ServerName"], parse_policy(value))
    # MODIFYING is committed first, so a second update meanwhile is refused (one at a time).
    with deps.uow() as uow:
        server = require_server(uow, caller, params["ServerName"])
        server.require_status(*ENGINE_UPDATE_STATES, action="UpdateServerEngineAttributes")
        resume = server.enter(ServerStatus.MODIFYING)
        uow.servers.save(server)
        uow.commit()
    try:
        with deps.uow() as uow:
            server = require_server(uow, caller, params["ServerName"])
            once = deps.engine_for(server).update_attribute(uow, server, name, value)
            server.status = resume
            uow.servers.save(server)
            uow.events.add(server.id, deps.clock.now(), f"Engine attribute {name} updated.")
            uow.commit()
    except Exception:
        _resume(deps, caller, params["ServerName"], resume)
        raise
    return {"Server": described(deps, server, once)}


def _set_node_name_policy(deps: Dependencies, caller: Caller, server_name: str, policy: NodeNamePolicy) -> dict:
    """opscm's own attribute: a setting of the server, changed at once (no MODIFYING)."""
    with deps.uow() as uow:
        server = require_server(uow, caller, server_name)
        server.require_status(*ENGINE_UPDATE_STATES, action="UpdateServerEngineAttributes")
        server.node_name_policy = policy
        uow.servers.save(server)
        uow.events.add(server.id, deps.clock.now(), f"Engine attribute {NODE_NAME_POLICY} set to {policy}.")
        uow.commit()
    return {"Server": described(deps, server)}


def _resume(deps: Dependencies, caller: Caller, server_name: str, status: ServerStatus) -> None:
    with deps.uow() as uow:
        server = require_server(uow, caller, server_name)
        if server.status is ServerStatus.MODIFYING:
            server.status = status
            uow.servers.save(server)
            uow.commit()


def recover_interrupted(deps: Dependencies) -> int:
    """Servers left MODIFYING by a crash mid-update go back to HEALTHY (the next health check judges)."""
    recovered = 0
    with deps.uow() as uow:
        for server in uow.servers.list_all():
            if server.status is ServerStatus.MODIFYING:
                server.status = ServerStatus.HEALTHY
                uow.servers.save(server)
                uow.events.add(server.id, deps.clock.now(), "An engine attribute update was interrupted by a restart.")
                recovered += 1
        uow.commit()
    return recovered
