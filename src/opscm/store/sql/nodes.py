"""SQL store of node claims: who holds each node name of a server (plain SQL: the hot path)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import delete

from opscm.domain.nodes import NodeClaim, NodeState

from .. import schema as t
from .base import Repository
from .text_search import contains_pattern

_COLUMNS = "server_id, name, state, token_hash, ref, changed_at"


class SqlNodes(Repository):
    def claim(self, claim: NodeClaim, *, server_revision: int | None = None) -> bool:
        """Take a free name; False when somebody holds it (no error, no aborted transaction).

        With ``server_revision``, also False unless the server's row is at that revision, which
        is then held as ``SqlServers.current`` holds it: the association's check of its server
        and its claim in one statement (on PostgreSQL, one round trip fewer)."""
        if server_revision is None:
            source, params = "VALUES (:server_id, :name, :state, :token_hash, :ref, :changed_at)", self._row(claim)
        else:
            source = (
                "SELECT :server_id, :name, :state, :token_hash, :ref, :changed_at WHERE EXISTS "
                f"(SELECT 1 FROM servers WHERE id = :server AND revision = :revision{self._sql.for_share})"
            )
            # The id a second time under its own name: PostgreSQL types each parameter once.
            params = {**self._row(claim), "server": claim.server_id, "revision": server_revision}
        return self._sql.changed(f"INSERT INTO nodes ({_COLUMNS}) {source} ON CONFLICT (server_id, name) DO NOTHING", params)

    def take_over(self, claim: NodeClaim, *, expected_token_hash: str) -> bool:
        """Hand the name to ``claim`` if ``expected_token_hash`` still holds it."""
        return self._sql.changed(
            "UPDATE nodes SET state = :state, token_hash = :token_hash, ref = :ref, changed_at = :changed_at "
            "WHERE server_id = :server_id AND name = :name AND token_hash = :expected",
            {**self._row(claim), "expected": expected_token_hash},
        )

    def release(self, server_id: str, name: str, *, token_hash: str) -> bool:
        return self._sql.changed(
            "DELETE FROM nodes WHERE server_id = :server_id AND name = :name AND token_hash = :token_hash",
            {"server_id": server_id, "name": name, "token_hash": token_hash},
        )

    def release_refs(self, server_id: str, refs: Iterable[str]) -> int:
        """Names whose certificate or key is gone (expired, pruned) are free again."""
        c = t.nodes.c
        refs = list(refs)
        if not refs:
            return 0
        return self._db.execute(delete(t.nodes).where(c.server_id == server_id, c.ref.in_(refs))).rowcount

    def get(self, server_id: str, name: str) -> NodeClaim | None:
        row = self._sql.first(
            f"SELECT {_COLUMNS} FROM nodes WHERE server_id = :server_id AND name = :name",
            {"server_id": server_id, "name": name},
        )
        return self._claim(row) if row else None

    def list(self, server_id: str) -> list[NodeClaim]:
        rows = self._sql.execute(
            f"SELECT {_COLUMNS} FROM nodes WHERE server_id = :server_id ORDER BY name", {"server_id": server_id}
        )
        return [self._claim(row) for row in rows]

    def page(
        self, server_id: str, *, after: str | None = None, before: str | None = None, contains: str | None = None, limit: int
    ) -> list[NodeClaim]:
        """Up to ``limit`` claims in name order: the first ones, those after ``after``, or the last
        ones before ``before`` (keyset pagination on the primary key: no OFFSET to walk)."""
        where, params = _filter(server_id, contains)
        order = "ASC"
        if after is not None:
            where, params["after"] = f"{where} AND name > :after", after
        elif before is not None:
            where, params["before"], order = f"{where} AND name < :before", before, "DESC"
        rows = self._sql.execute(
            f"SELECT {_COLUMNS} FROM nodes WHERE {where} ORDER BY name {order} LIMIT :limit", {**params, "limit": limit}
        )
        claims = [self._claim(row) for row in rows]
        return claims[::-1] if order == "DESC" else claims

    def count(self, server_id: str, *, contains: str | None = None) -> int:
        where, params = _filter(server_id, contains)
        return self._sql.first(f"SELECT count(*) FROM nodes WHERE {where}", params)[0]

    def replace_all(self, server_id: str, claims: Sequence[NodeClaim]) -> None:
        self._db.execute(delete(t.nodes).where(t.nodes.c.server_id == server_id))
        if claims:
            self._db.execute(t.nodes.insert(), [_core_row(claim) for claim in claims])

    def _row(self, claim: NodeClaim) -> dict:
        return {**_core_row(claim), "changed_at": self._sql.time(claim.changed_at)}

    def _claim(self, row) -> NodeClaim:
        server_id, name, state, token_hash, ref, changed_at = row
        return NodeClaim(server_id, name, NodeState(state), token_hash, ref, self._sql.read_time(changed_at))


def _filter(server_id: str, contains: str | None) -> tuple[str, dict]:
    if not contains:
        return "server_id = :server_id", {"server_id": server_id}
    where = "server_id = :server_id AND lower(name) LIKE :pattern ESCAPE '\\'"
    return where, {"server_id": server_id, "pattern": contains_pattern(contains)}


def _core_row(claim: NodeClaim) -> dict:
    return {
        "server_id": claim.server_id,
        "name": claim.name,
        "state": str(claim.state),
        "token_hash": claim.token_hash,
        "ref": claim.ref,
        "changed_at": claim.changed_at,
    }
