"""DescribeAccountAttributes: the limits of the caller's account and region, and their use."""

from __future__ import annotations

from opscm.domain.backups import BackupType

from .context import Caller, Dependencies


def describe_account_attributes(deps: Dependencies, caller: Caller, params: dict) -> dict:
    with deps.uow(read_only=True) as uow:
        servers = uow.servers.count(caller.account_id, caller.region)
        manual_backups = uow.backups.count(caller.account_id, caller.region, str(BackupType.MANUAL))
    return {
        "Attributes": [
            {"Name": "ServerLimit", "Maximum": deps.limits.servers_per_region, "Used": servers},
            {"Name": "ManualBackupLimit", "Maximum": deps.limits.manual_backups_per_region, "Used": manual_backups},
        ]
    }
