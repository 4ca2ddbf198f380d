"""SQL store of node claims: who holds each node name of a server."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.dialects import postgresql, sqlite

from opscm.domain.nodes import NodeClaim, NodeState

from .. import schema as t
from .base import Repository

_INSERT = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}


class SqlNodes(Repository):
    def claim(self, claim: NodeClaim) -> bool:
        """Take a free name; False when somebody holds it (no error, no aborted transaction)."""
        insert = _INSERT[self._db.dialect.name]
        # RETURNING tells what happened (psycopg does not count rows of ON CONFLICT DO NOTHING).
        taken = self._db.scalar(
            insert(t.nodes)
            .values(**_row(claim))
            .on_conflict_do_nothing(index_elements=["server_id", "name"])
            .returning(t.nodes.c.name)
        )
        return taken is not None

    def take_over(self, claim: NodeClaim, *, expected_token_hash: str) -> bool:
        """Hand the name to ``claim`` if ``expected_token_hash`` still holds it."""
        c = t.nodes.c
        result = self._db.execute(
            update(t.nodes)
            .where(c.server_id == claim.server_id, c.name == claim.name, c.token_hash == expected_token_hash)
            .values(state=str(claim.state), token_hash=claim.token_hash, ref=claim.ref, changed_at=claim.changed_at)
        )
        return result.rowcount == 1

    def release(self, server_id: str, name: str, *, token_hash: str) -> bool:
        c = t.nodes.c
        result = self._db.execute(
            delete(t.nodes).where(c.server_id == server_id, c.name == name, c.token_hash == token_hash)
        )
        return result.rowcount == 1

    def release_refs(self, server_id: str, refs: Iterable[str]) -> int:
        """Names whose certificate or key is gone (expired, pruned) are free again."""
        c = t.nodes.c
        refs = list(refs)
        if not refs:
            return 0
        return self._db.execute(delete(t.nodes).where(c.server_id == server_id, c.ref.in_(refs))).rowcount

    def get(self, server_id: str, name: str) -> NodeClaim | None:
        c = t.nodes.c
        row = self._db.execute(select(t.nodes).where(c.server_id == server_id, c.name == name)).mappings().first()
        return _claim(row) if row else None

    def list(self, server_id: str) -> list[NodeClaim]:
        c = t.nodes.c
        rows = self._db.execute(select(t.nodes).where(c.server_id == server_id).order_by(c.name)).mappings()
        return [_claim(row) for row in rows]

    def replace_all(self, server_id: str, claims: Sequence[NodeClaim]) -> None:
        self._db.execute(delete(t.nodes).where(t.nodes.c.server_id == server_id))
        if claims:
            self._db.execute(t.nodes.insert(), [_row(claim) for claim in claims])


def _row(claim: NodeClaim) -> dict:
    return {
        "server_id": claim.server_id,
        "name": claim.name,
        "state": str(claim.state),
        "token_hash": claim.token_hash,
        "ref": claim.ref,
        "changed_at": claim.changed_at,
    }


def _claim(row) -> NodeClaim:
    return NodeClaim(
        server_id=row["server_id"],
        name=row["name"],
        state=NodeState(row["state"]),
        token_hash=row["token_hash"],
        ref=row["ref"],
        changed_at=row["changed_at"],
    )
