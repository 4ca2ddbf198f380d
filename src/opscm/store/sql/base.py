"""What every SQL repository shares: the unit of work's connection."""

from sqlalchemy import Connection


class Repository:
    def __init__(self, connection: Connection):
        self._db = connection
