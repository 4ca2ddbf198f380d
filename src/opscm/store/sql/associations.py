"""SQL store of association tokens' outcomes (plain SQL: every association and every poll)."""

from __future__ import annotations

from datetime import datetime

from opscm.domain.associations import Association, AssociationAction, AssociationStatus

from .. import schema as t
from .base import Repository

_COLUMNS = "token_hash, server_id, node_name, action, status, created_at, engine_attributes, status_reason"


class SqlAssociations(Repository):
    def add(self, association: Association, account_id: str, region: str) -> None:
        self._sql.execute(
            f"INSERT INTO associations ({_COLUMNS}, account_id, region) VALUES (:token_hash, :server_id, "
            ":node_name, :action, :status, :created_at, :engine_attributes, :status_reason, :account_id, :region)",
            {**self._row(association), "account_id": account_id, "region": region},
        )

    def get(self, token_hash: str) -> Association | None:
        row = self._sql.first(f"SELECT {_COLUMNS} FROM associations WHERE token_hash = :token_hash", {"token_hash": token_hash})
        if row is None:
            return None
        token_hash, server_id, node_name, action, status, created_at, attributes, reason = row
        return Association(
            token_hash=token_hash,
            server_id=server_id,
            node_name=node_name,
            action=AssociationAction(action),
            status=AssociationStatus(status),
            created_at=self._sql.read_time(created_at),
            engine_attributes=list(self._sql.read_json(attributes)),
            status_reason=reason,
        )

    def save(self, association: Association) -> None:
        self._sql.execute(
            "UPDATE associations SET status = :status, engine_attributes = :engine_attributes, "
            "status_reason = :status_reason WHERE token_hash = :token_hash",
            self._row(association),
        )

    def prune(self, before: datetime, limit: int) -> int:
        """Forget up to ``limit`` finished associations made before ``before``."""
        c = t.associations.c
        return self._delete_some(t.associations, c.token_hash, (c.created_at < before) & (c.status != "IN_PROGRESS"), limit)

    def _row(self, association: Association) -> dict:
        return {
            "token_hash": association.token_hash,
            "server_id": association.server_id,
            "node_name": association.node_name,
            "action": str(association.action),
            "status": str(association.status),
            "created_at": self._sql.time(association.created_at),
            "engine_attributes": self._sql.json(association.engine_attributes),
            "status_reason": association.status_reason,
        }
