"""SQL store of association tokens' outcomes (plain SQL: every association and every poll)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone

from sqlalchemy import String, func, select, type_coerce

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

    def count_by_hour(self, server_ids: Sequence[str], since: datetime) -> list[tuple[datetime, str, str, int]]:
        """(hour, action, status, count) of the associations made since ``since`` (on the
        created_at index), hours in UTC."""
        if not server_ids:
            return []
        c = t.associations.c
        if self._sql.sqlite:  # stored as text 'YYYY-MM-DD HH:MM:SS.ffffff' (UTC)
            hour = func.substr(type_coerce(c.created_at, String), 1, 13)
        else:
            hour = func.date_trunc("hour", func.timezone("UTC", c.created_at))
        rows = self._db.execute(
            select(hour, c.action, c.status, func.count())
            .where(c.created_at >= since, c.server_id.in_(list(server_ids)))
            .group_by(hour, c.action, c.status)
        )
        return [(_hour(value), action, status, count) for value, action, status, count in rows]

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


def _hour(value: str | datetime) -> datetime:
    if isinstance(value, str):
        value = datetime.strptime(value, "%Y-%m-%d %H")
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)
