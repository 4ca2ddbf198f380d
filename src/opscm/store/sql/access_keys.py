"""SQL store of access keys (secrets sealed)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, func, insert, select

from opscm.service.ports import (
    AccessKey,
)

from .. import schema as t
from .base import Repository


class SqlAccessKeys(Repository):
    def add(self, key: AccessKey, secret_enc: bytes, now: datetime) -> None:
        self._db.execute(
            insert(t.access_keys).values(
                access_key_id=key.access_key_id,
                account_id=key.account_id,
                secret_enc=secret_enc,
                name=key.name,
                actions=list(key.actions),
                server_names=list(key.server_names) if key.server_names is not None else None,
                created_at=now,
            )
        )

    def get(self, access_key_id: str) -> tuple[AccessKey, bytes] | None:
        row = self._db.execute(select(t.access_keys).where(t.access_keys.c.access_key_id == access_key_id))
        row = row.mappings().first()
        if row is None:
            return None
        return _access_key(row), row["secret_enc"]

    def list(self) -> list[AccessKey]:
        c = t.access_keys.c
        rows = self._db.execute(select(t.access_keys).order_by(c.created_at, c.access_key_id))
        return [_access_key(row) for row in rows.mappings()]

    def remove(self, access_key_id: str) -> bool:
        result = self._db.execute(delete(t.access_keys).where(t.access_keys.c.access_key_id == access_key_id))
        return result.rowcount > 0

    def count(self) -> int:
        return self._db.scalar(select(func.count()).select_from(t.access_keys))


def _access_key(row) -> AccessKey:
    """A stored key without its secret (``secret_enc`` is read separately, only for SigV4)."""
    names = row["server_names"]
    return AccessKey(
        access_key_id=row["access_key_id"],
        account_id=row["account_id"],
        secret_access_key="",
        name=row["name"],
        actions=tuple(row["actions"]),
        server_names=tuple(names) if names is not None else None,
    )
