"""RestoreServer and its job: a backup's engine state brought back on the same server and endpoint."""

from __future__ import annotations

import logging

from opscm.domain.errors import InvalidState, ValidationFailed
from opscm.domain.servers import RESTORE_STATES, ServerStatus

from . import snapshots
from .backups import failure_reason
from .context import Caller, Dependencies
from .ports import Conflict
from .servers import require_server
from .views import described

log = logging.getLogger(__name__)

# RestoreServer may change these of the server (AWS: a new instance of that type / key pair).
RESTORED_SETTINGS = ("InstanceType", "KeyPair")


def restore_server(deps: Dependencies, caller: Caller, params: dict) -> dict:
    with deps.uow() as uow:
        server = require_server(uow, caller, params["ServerName"])
        backup = snapshots.require_backup(uow, caller, params["BackupId"])
        server.require_status(*RESTORE_STATES, action="RestoreServer")
        snapshots.require_usable(backup, server.engine.engine)
        if backup.server_name != server.name:
            # Another live server's CA would be shared by two servers counting serials apart.
            raise ValidationFailed(
                f"Backup {backup.id} is a backup of server {backup.server_name}; RestoreServer brings back a "
                f"backup of server {server.name} only (CreateServer with a BackupId makes a new server from it)."
            )
        server.settings.update({k: params[k] for k in RESTORED_SETTINGS if params.get(k)})
        resume = server.enter(ServerStatus.RESTORING)
        uow.servers.save(server)
        now = deps.clock.now()
        uow.events.add(server.id, now, f"Restore of server {server.name} from backup {backup.id} started.")
        uow.jobs.add("restore-server", server.id, now, {"backup_id": backup.id, "resume_status": str(resume)})
        uow.commit()
    view = described(deps, server)
    deps.wake_jobs()
    return {"Server": view}


def run_restore(deps: Dependencies, server_id: str, payload: dict) -> None:
    """Read the snapshot, then apply it in one transaction; a failure leaves the engine as it was."""
    backup_id = payload["backup_id"]
    try:
        with deps.uow(read_only=True) as uow:
            server = uow.servers.get_by_id(server_id)
            if server is None or server.status is not ServerStatus.RESTORING:
                return  # deleted meanwhile, or restored before a restart
            backup = uow.backups.get(server.account_id, server.region, backup_id)
        if backup is None:
            raise InvalidState(f"Backup {backup_id} was deleted before the restore.")
        snapshot = snapshots.read_snapshot(deps, backup)
        engine = deps.engine_for(server)
        for _ in range(5):
            # Merging and the new CRL are made outside the transaction, then checked in it.
            plan = engine.plan_restore(server, snapshot, new_server=False)
            with deps.uow() as uow:
                server = uow.servers.get_by_id(server_id)
                if server is None or server.status is not ServerStatus.RESTORING:
                    return
                try:
                    server.status, server.status_reason = ServerStatus.HEALTHY, None
                    snapshots.apply_restore(uow, engine, server, plan)
                except Conflict:
                    continue
                message = f"Server {server.name} restored from backup {backup_id}; it is HEALTHY."
                uow.events.add(server.id, deps.clock.now(), message)
                uow.commit()
            return
        raise InvalidState("The engine kept changing during the restore; try again.")
    except Exception as error:  # noqa: BLE001 - nothing was changed: the server goes back to its state
        log.exception("restore of server %s from backup %s failed", server_id, backup_id)
        reason = failure_reason(error)
        with deps.uow() as uow:
            server = uow.servers.get_by_id(server_id)
            if server is not None and server.status is ServerStatus.RESTORING:
                server.status = ServerStatus(payload.get("resume_status", ServerStatus.HEALTHY))
                uow.servers.save(server)
                uow.events.add(server.id, deps.clock.now(), f"Restore from backup {backup_id} failed: {reason}")
            uow.commit()
