"""Alembic environment: opscm hands over its own connection (see opscm.store.database)."""

from alembic import context

from opscm.store.schema import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata)
with context.begin_transaction():
    context.run_migrations()
