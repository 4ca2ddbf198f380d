"""CreateBackup, DescribeBackups, DeleteBackup, and the backup job (snapshots of engine state)."""

from __future__ import annotations

from opscm.domain.backups import Backup, BackupStatus, BackupType, new_backup_id
from opscm.domain.errors import LimitExceeded
from opscm.domain.servers import BACKUP_STATES, Server, ServerStatus

from .context import Caller, Dependencies
from .ports import UnitOfWork
from .servers import require_server


def start_backup(deps: Dependencies, uow: UnitOfWork, server: Server, *, automated: bool, description: str | None) -> Backup:
    """Record an IN_PROGRESS backup, move the server to BACKING_UP and queue the snapshot job."""
    server.require_status(*BACKUP_STATES, action="CreateBackup")
    now = deps.clock.now()
    backup_type = BackupType.AUTOMATED if automated else BackupType.MANUAL
    if not automated:
        used = uow.backups.count(server.account_id, server.region, str(BackupType.MANUAL))
        if used >= deps.limits.manual_backups_per_region:
            raise LimitExceeded(
                f"You have reached the maximum of {deps.limits.manual_backups_per_region} manual backups."
            )
    backup = Backup(
        id=new_backup_id(server.name, now),
        account_id=server.account_id,
        region=server.region,
        server_id=server.id,
        server_name=server.name,
        backup_type=backup_type,
        status=BackupStatus.IN_PROGRESS,
        created_at=now,
        server_snapshot=server_snapshot(server),
        description=description,
    )
    resume = server.enter(ServerStatus.BACKING_UP)
    uow.servers.save(server)
    uow.backups.add(backup)
    uow.events.add(server.id, now, f"{backup_type.title()} backup {backup.id} started.")
    uow.jobs.add("create-backup", server.id, now, {"backup_id": backup.id, "resume_status": str(resume)})
    return backup


def server_snapshot(server: Server) -> dict:
    """What DescribeBackups echoes of the server, and what a restore brings back of its settings."""
    return {
        "Engine": server.engine.engine,
        "EngineModel": server.engine.model,
        "EngineVersion": server.engine.version,
        "settings": dict(server.settings),
    }


def create_backup(deps: Dependencies, caller: Caller, params: dict) -> dict:
    raise NotImplementedError  # filled by the backups work (see issue 3)
