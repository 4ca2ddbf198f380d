"""The scheduler's tick: automated backups and maintenance, each once per window."""

from __future__ import annotations

import logging

from opscm.domain.servers import SETTLED_STATES
from opscm.domain.windows import current_window_start

from . import backups, maintenance
from .context import Dependencies

log = logging.getLogger(__name__)


def tick(deps: Dependencies) -> int:
    """Start what is due now; returns how many jobs were queued."""
    now = deps.clock.now()
    queued = 0
    with deps.uow() as uow:
        for server in uow.servers.list_all():
            if server.status not in SETTLED_STATES:
                continue
            settings = server.settings
            backup_start = current_window_start(settings["PreferredBackupWindow"], now)
            if (
                not settings.get("DisableAutomatedBackup")
                and backup_start is not None
                and (server.last_automated_backup_at is None or server.last_automated_backup_at < backup_start)
            ):
                server.last_automated_backup_at = now
                backups.start_backup(deps, uow, server, automated=True, description=None)
                queued += 1
                continue  # one transient state at a time; maintenance waits for the next tick
            maintenance_start = current_window_start(settings["PreferredMaintenanceWindow"], now)
            if maintenance_start is not None and (
                server.last_maintenance_at is None or server.last_maintenance_at < maintenance_start
            ):
                server.last_maintenance_at = now
                maintenance.start_maintenance(deps, uow, server)
                queued += 1
        uow.commit()
    if queued:
        deps.wake_jobs()
    return queued
