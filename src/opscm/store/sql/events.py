"""SQL store of server events."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import insert, select

from opscm.service.ports import (
    Event,
)

from .. import schema as t
from .base import Repository


# The API's ServerEvent.Message holds at most 10,000 characters; a message that quotes a long
# node name (up to 10,000 characters) twice would not.
MAX_MESSAGE = 10_000


class SqlEvents(Repository):
    def add(self, server_id: str, now: datetime, message: str, log_url: str | None = None) -> None:
        if len(message) > MAX_MESSAGE:
            message = message[: MAX_MESSAGE - 1] + "\u2026"
        self._db.execute(insert(t.events).values(server_id=server_id, created_at=now, message=message, log_url=log_url))

    def list(self, server_id: str) -> list[Event]:
        c = t.events.c
        rows = self._db.execute(select(t.events).where(c.server_id == server_id).order_by(c.id.desc()))
        return [Event(**row) for row in rows.mappings()]

    def latest(self, server_id: str, limit: int) -> list[Event]:
        """The newest ``limit`` events, newest first (on the (server_id, id) index)."""
        c = t.events.c
        rows = self._db.execute(select(t.events).where(c.server_id == server_id).order_by(c.id.desc()).limit(limit))
        return [Event(**row) for row in rows.mappings()]

    def prune(self, before: datetime, limit: int) -> int:
        """Forget up to ``limit`` events older than ``before``."""
        c = t.events.c
        return self._delete_some(t.events, c.id, c.created_at < before, limit)
