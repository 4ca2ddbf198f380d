"""The plain-SQL reads name their columns; a column added to the schema must be read too."""

from opscm.store import schema
from opscm.store.sql.servers import READ_COLUMNS


def test_a_server_row_is_read_whole():
    assert sorted(READ_COLUMNS) == sorted(column.name for column in schema.servers.columns)
    assert len(set(READ_COLUMNS)) == len(READ_COLUMNS)
