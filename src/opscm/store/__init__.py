"""Persistence: SQLAlchemy Core tables, Alembic migrations, the SQL unit of work."""
