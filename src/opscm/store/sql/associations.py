"""SQL store of association tokens' outcomes."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import insert, select, update

from opscm.domain.associations import Association, AssociationAction, AssociationStatus

from .. import schema as t
from .base import Repository


class SqlAssociations(Repository):
    def add(self, association: Association, account_id: str, region: str) -> None:
        self._db.execute(
            insert(t.associations).values(
                token_hash=association.token_hash,
                account_id=account_id,
                region=region,
                server_id=association.server_id,
                node_name=association.node_name,
                action=str(association.action),
                created_at=association.created_at,
                **_association_state(association),
            )
        )

    def get(self, token_hash: str) -> Association | None:
        row = self._db.execute(select(t.associations).where(t.associations.c.token_hash == token_hash))
        row = row.mappings().first()
        if row is None:
            return None
        return Association(
            token_hash=row["token_hash"],
            server_id=row["server_id"],
            node_name=row["node_name"],
            action=AssociationAction(row["action"]),
            status=AssociationStatus(row["status"]),
            created_at=row["created_at"],
            engine_attributes=list(row["engine_attributes"]),
            status_reason=row["status_reason"],
        )

    def save(self, association: Association) -> None:
        c = t.associations.c
        self._db.execute(
            update(t.associations)
            .where(c.token_hash == association.token_hash)
            .values(**_association_state(association))
        )


    def prune(self, before: datetime, limit: int) -> int:
        """Forget up to ``limit`` finished associations made before ``before``."""
        c = t.associations.c
        return self._delete_some(t.associations, c.token_hash, (c.created_at < before) & (c.status != "IN_PROGRESS"), limit)


def _association_state(association: Association) -> dict:
    return {
        "status": str(association.status),
        "status_reason": association.status_reason,
        "engine_attributes": association.engine_attributes,
    }
