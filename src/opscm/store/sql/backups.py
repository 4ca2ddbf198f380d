"""SQL store of backup records (the snapshots themselves are files)."""

from __future__ import annotations

from sqlalchemy import delete, func, insert, select, update

from opscm.domain.backups import Backup, BackupStatus, BackupType

from .. import schema as t
from .base import Repository


class SqlBackups(Repository):
    def add(self, backup: Backup) -> None:
        self._db.execute(insert(t.backups).values(**_backup_row(backup)))

    def id_taken(self, backup_id: str) -> bool:
        return self._db.scalar(select(t.backups.c.id).where(t.backups.c.id == backup_id)) is not None

    def get(self, account_id: str, region: str, backup_id: str) -> Backup | None:
        c = t.backups.c
        row = (
            self._db.execute(select(t.backups).where(c.account_id == account_id, c.region == region, c.id == backup_id))
            .mappings()
            .first()
        )
        return _backup(row) if row else None

    def save(self, backup: Backup) -> None:
        self._db.execute(update(t.backups).where(t.backups.c.id == backup.id).values(**_backup_row(backup)))

    def delete(self, backup_id: str) -> None:
        self._db.execute(delete(t.backups).where(t.backups.c.id == backup_id))

    def list(self, account_id: str, region: str, server_name: str | None = None) -> list[Backup]:
        c = t.backups.c
        query = select(t.backups).where(c.account_id == account_id, c.region == region)
        if server_name is not None:
            query = query.where(c.server_name == server_name)
        rows = self._db.execute(query.order_by(c.created_at.desc(), c.id.desc()))
        return [_backup(row) for row in rows.mappings()]

    def count(self, account_id: str, region: str, backup_type: str) -> int:
        c = t.backups.c
        return self._db.scalar(
            select(func.count()).where(c.account_id == account_id, c.region == region, c.backup_type == backup_type)
        )


def _backup_row(backup: Backup) -> dict:
    return {
        "id": backup.id,
        "account_id": backup.account_id,
        "region": backup.region,
        "server_id": backup.server_id,
        "server_name": backup.server_name,
        "backup_type": str(backup.backup_type),
        "status": str(backup.status),
        "status_description": backup.status_description,
        "description": backup.description,
        "created_at": backup.created_at,
        "server_snapshot": backup.server_snapshot,
        "size_bytes": backup.size_bytes,
        "location": backup.location,
    }


def _backup(row) -> Backup:
    return Backup(
        id=row["id"],
        account_id=row["account_id"],
        region=row["region"],
        server_id=row["server_id"],
        server_name=row["server_name"],
        backup_type=BackupType(row["backup_type"]),
        status=BackupStatus(row["status"]),
        created_at=row["created_at"],
        server_snapshot=dict(row["server_snapshot"]),
        description=row["description"],
        status_description=row["status_description"],
        size_bytes=row["size_bytes"],
        location=row["location"],
    )
