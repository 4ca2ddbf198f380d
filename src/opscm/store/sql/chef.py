"""SQL store of the built-in Chef client registry."""

from __future__ import annotations

import dataclasses
from datetime import datetime

from sqlalchemy import delete, insert, select

from opscm.engines.ports import ChefClient

from .. import schema as t
from .base import Repository


class SqlChefClients(Repository):
    def put(self, server_id: str, organization: str, name: str, public_key_pem: str, now: datetime) -> None:
        # The node claim already owns the name: an existing row is this name's old key.
        self._sql.execute(
            "INSERT INTO chef_clients (server_id, organization, name, public_key_pem, created_at) "
            "VALUES (:server_id, :organization, :name, :public_key_pem, :created_at) "
            "ON CONFLICT (server_id, organization, name) DO UPDATE "
            "SET public_key_pem = excluded.public_key_pem, created_at = excluded.created_at",
            {
                "server_id": server_id,
                "organization": organization,
                "name": name,
                "public_key_pem": public_key_pem,
                "created_at": self._sql.time(now),
            },
        )

    def list(self, server_id: str) -> list[ChefClient]:
        c = t.chef_clients.c
        rows = self._db.execute(
            select(c.organization, c.name, c.public_key_pem, c.created_at)
            .where(c.server_id == server_id)
            .order_by(c.organization, c.name)
        )
        return [ChefClient(*row) for row in rows]

    def delete(self, server_id: str, organization: str, name: str) -> bool:
        return self._sql.changed(
            "DELETE FROM chef_clients WHERE server_id = :server_id AND organization = :organization AND name = :name",
            {"server_id": server_id, "organization": organization, "name": name},
        )

    def replace_all(self, server_id: str, clients) -> None:
        self._db.execute(delete(t.chef_clients).where(t.chef_clients.c.server_id == server_id))
        if clients:
            self._db.execute(
                insert(t.chef_clients), [{"server_id": server_id, **dataclasses.asdict(client)} for client in clients]
            )
