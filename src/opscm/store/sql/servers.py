"""SQL store of servers."""

from __future__ import annotations

import functools

from sqlalchemy import delete, insert, update

from opscm.domain.nodes import NodeNamePolicy
from opscm.domain.servers import EngineChoice, Server, ServerStatus

from .. import schema as t
from .base import Repository


# Every column, in the order SqlServers._server unpacks a row.
READ_COLUMNS = (
    "id", "account_id", "region", "name", "engine", "engine_model", "engine_version", "status",
    "status_reason", "endpoint", "created_at", "settings", "engine_data", "maintenance_status",
    "last_automated_backup_at", "last_maintenance_at", "backend", "node_name_policy", "revision",
)
_COLUMNS = ", ".join(READ_COLUMNS)
# Frozen, so one instance per choice serves every row (DescribeServers reads them all).
_engine_choice = functools.lru_cache(maxsize=64)(EngineChoice)


class SqlServers(Repository):
    def add(self, server: Server) -> None:
        self._db.execute(insert(t.servers).values(**_server_row(server)))

    # Reads are plain SQL: DescribeServers and the server cache are on the hot path.
    def get(self, account_id: str, region: str, name: str) -> Server | None:
        return self._one("account_id = :account_id AND region = :region AND name = :name", account_id=account_id, region=region, name=name)

    def get_by_id(self, server_id: str) -> Server | None:
        return self._one("id = :id", id=server_id)

    def list(self, account_id: str, region: str) -> list[Server]:
        return self._many("WHERE account_id = :account_id AND region = :region", account_id=account_id, region=region)

    def list_all(self) -> list[Server]:
        return self._many("")

    def count(self, account_id: str, region: str) -> int:
        row = self._sql.first(
            "SELECT count(*) FROM servers WHERE account_id = :account_id AND region = :region",
            {"account_id": account_id, "region": region},
        )
        return row[0]

    def save(self, server: Server) -> None:
        c = t.servers.c
        row = _server_row(server)
        server.revision = self._db.scalar(
            update(t.servers).where(c.id == server.id).values(**row, revision=c.revision + 1).returning(c.revision)
        ) or server.revision

    def current(self, server_id: str) -> tuple[ServerStatus, int] | None:
        """Status and revision, locked against changes until the transaction ends (PostgreSQL:
        FOR SHARE, so associations do not wait on each other; SQLite: the write lock)."""
        row = self._sql.first(f"SELECT status, revision FROM servers WHERE id = :id{self._sql.for_share}", {"id": server_id})
        return (ServerStatus(row[0]), row[1]) if row else None

    def delete(self, server_id: str) -> None:
        self._db.execute(delete(t.servers).where(t.servers.c.id == server_id))

    def _one(self, condition: str, **params) -> Server | None:
        row = self._sql.first(f"SELECT {_COLUMNS} FROM servers WHERE {condition}{self._sql.for_update}", params)
        return self._server(row) if row else None

    def _many(self, where: str, **params) -> list[Server]:
        rows = self._sql.execute(f"SELECT {_COLUMNS} FROM servers {where} ORDER BY created_at, name", params)
        return [self._server(row) for row in rows]

    def _server(self, row) -> Server:
        (server_id, account_id, region, name, engine, model, version, status, status_reason, endpoint, created_at,
         settings, engine_data, maintenance_status, backup_at, maintenance_at, backend, policy, revision) = row
        read_time, read_json = self._sql.read_time, self._sql.read_json
        return Server(
            id=server_id,
            account_id=account_id,
            region=region,
            name=name,
            engine=_engine_choice(engine, model, version),
            status=ServerStatus(status),
            status_reason=status_reason,
            endpoint=endpoint,
            created_at=read_time(created_at),
            settings=dict(read_json(settings)),
            engine_data=dict(read_json(engine_data)),
            maintenance_status=maintenance_status,
            last_automated_backup_at=read_time(backup_at),
            last_maintenance_at=read_time(maintenance_at),
            backend=backend,
            node_name_policy=NodeNamePolicy(policy),
            revision=revision,
        )


def _server_row(server: Server) -> dict:
    return {
        "id": server.id,
        "account_id": server.account_id,
        "region": server.region,
        "name": server.name,
        "engine": server.engine.engine,
        "engine_model": server.engine.model,
        "engine_version": server.engine.version,
        "status": str(server.status),
        "status_reason": server.status_reason,
        "endpoint": server.endpoint,
        "created_at": server.created_at,
        "settings": server.settings,
        "engine_data": server.engine_data,
        "maintenance_status": server.maintenance_status,
        "last_automated_backup_at": server.last_automated_backup_at,
        "last_maintenance_at": server.last_maintenance_at,
        "backend": server.backend,
        "node_name_policy": str(server.node_name_policy),
    }

