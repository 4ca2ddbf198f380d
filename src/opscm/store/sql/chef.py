"""SQL store of the built-in Chef client registry."""

from __future__ import annotations

import dataclasses
from datetime import datetime

from sqlalchemy import delete, insert, select, update

from opscm.engines.ports import ChefClient

from .. import schema as t
from .base import Repository


class SqlChefClients(Repository):
    def put(self, server_id: str, organization: str, name: str, public_key_pem: str, now: datetime) -> None:
        c = t.chef_clients.c
        # The node claim already owns the name: an existing row is this name's old key.
        changed = self._db.execute(
            update(t.chef_clients)
            .where(c.server_id == server_id, c.organization == organization, c.name == name)
            .values(public_key_pem=public_key_pem, created_at=now)
        )
        if changed.rowcount == 0:
            self._db.execute(
                insert(t.chef_clients).values(
                    server_id=server_id, organization=organization, name=name, public_key_pem=public_key_pem, created_at=now
                )
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
        c = t.chef_clients.c
        result = self._db.execute(
            delete(t.chef_clients).where(c.server_id == server_id, c.organization == organization, c.name == name)
        )
        return result.rowcount > 0

    def replace_all(self, server_id: str, clients) -> None:
        self._db.execute(delete(t.chef_clients).where(t.chef_clients.c.server_id == server_id))
        if clients:
            self._db.execute(
                insert(t.chef_clients), [{"server_id": server_id, **dataclasses.asdict(client)} for client in clients]
            )
