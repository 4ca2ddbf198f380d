"""What every SQL repository shares: the unit of work's connection."""

from sqlalchemy import ColumnElement, Connection, Table, delete, select


class Repository:
    def __init__(self, connection: Connection):
        self._db = connection

    def _delete_some(self, table: Table, key, condition: ColumnElement[bool], limit: int) -> int:
        """Delete at most ``limit`` rows matching ``condition``: pruning in short transactions."""
        some = select(key).where(condition).limit(limit)
        return self._db.execute(delete(table).where(key.in_(some))).rowcount
