"""SQL store of tags, in the order their keys were first set."""

from __future__ import annotations

from sqlalchemy import delete, func, insert, select, update

from .. import schema as t
from .base import Repository


class SqlTags(Repository):
    def put(self, resource_arn: str, tags) -> None:
        c = t.tags.c
        existing = {key for (key, _value) in self.list(resource_arn)}
        position = self._db.scalar(select(func.coalesce(func.max(c.position), 0)).where(c.resource_arn == resource_arn))
        for key, value in tags:
            if key in existing:
                self._db.execute(update(t.tags).where(c.resource_arn == resource_arn, c.key == key).values(value=value))
            else:
                position += 1
                existing.add(key)
                self._db.execute(
                    insert(t.tags).values(resource_arn=resource_arn, key=key, value=value, position=position)
                )

    def remove(self, resource_arn: str, keys) -> None:
        c = t.tags.c
        self._db.execute(delete(t.tags).where(c.resource_arn == resource_arn, c.key.in_(list(keys))))

    def list(self, resource_arn: str) -> list[tuple[str, str]]:
        c = t.tags.c
        rows = self._db.execute(select(c.key, c.value).where(c.resource_arn == resource_arn).order_by(c.position))
        return [(row.key, row.value) for row in rows]

    def delete_all(self, resource_arn: str) -> None:
        self._db.execute(delete(t.tags).where(t.tags.c.resource_arn == resource_arn))
