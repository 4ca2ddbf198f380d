"""Backups: ids and ARNs in AWS's form, statuses, the manual backup limit."""

from __future__ import annotations

import dataclasses
import enum
from datetime import datetime
from typing import Any


class BackupStatus(enum.StrEnum):
    IN_PROGRESS = "IN_PROGRESS"
    OK = "OK"
    FAILED = "FAILED"
    DELETING = "DELETING"


class BackupType(enum.StrEnum):
    AUTOMATED = "AUTOMATED"
    MANUAL = "MANUAL"


def new_backup_id(server_name: str, now: datetime) -> str:
    """``<ServerName>-yyyyMMddHHmmssSSS``, as AWS names backups."""
    return f"{server_name}-{now:%Y%m%d%H%M%S}{now.microsecond // 1000:03d}"


def server_name_of_backup(backup_id: str) -> str | None:
    """The server name inside a backup id (``<ServerName>-<17 digits>``); None for another form."""
    name, dash, stamp = backup_id.rpartition("-")
    return name if dash and name and len(stamp) == 17 and stamp.isascii() and stamp.isdigit() else None


def backup_arn(region: str, account_id: str, backup_id: str) -> str:
    return f"arn:aws:opsworks-cm:{region}:{account_id}:backup/{backup_id}"


@dataclasses.dataclass
class Backup:
    id: str
    account_id: str
    region: str
    server_id: str
    server_name: str
    backup_type: BackupType
    status: BackupStatus
    created_at: datetime
    # The server as it was: Engine, EngineModel, EngineVersion and its settings.
    server_snapshot: dict[str, Any]
    description: str | None = None
    status_description: str | None = None
    size_bytes: int | None = None
    location: str | None = None

    @property
    def arn(self) -> str:
        return backup_arn(self.region, self.account_id, self.id)
