"""Lifecycle: events, backups, tags, job payloads, maintenance and backup bookkeeping.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

from opscm.store.schema import UtcDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN: a batch (copy and rename) of `servers` on SQLite would fire ON DELETE CASCADE.
    op.add_column("servers", sa.Column("maintenance_status", sa.String(16), nullable=True))
    op.add_column("servers", sa.Column("last_automated_backup_at", UtcDateTime, nullable=True))
    op.add_column("servers", sa.Column("last_maintenance_at", UtcDateTime, nullable=True))
    op.add_column("jobs", sa.Column("payload", sa.JSON, nullable=True))
    op.create_table(
        "events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("server_id", sa.String(36), sa.ForeignKey("servers.id", ondelete="CASCADE"), nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("log_url", sa.Text, nullable=True),
    )
    op.create_index("ix_events_server", "events", ["server_id", "id"])
    op.create_table(
        "backups",
        sa.Column("id", sa.String(79), primary_key=True),
        sa.Column("account_id", sa.String(12), nullable=False),
        sa.Column("region", sa.String(64), nullable=False),
        sa.Column("server_id", sa.String(36), nullable=False),
        sa.Column("server_name", sa.String(40), nullable=False),
        sa.Column("backup_type", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("status_description", sa.Text, nullable=True),
        sa.Column("description", sa.Text, nullable=True),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("server_snapshot", sa.JSON, nullable=False),
        sa.Column("size_bytes", sa.BigInteger, nullable=True),
        sa.Column("location", sa.Text, nullable=True),
    )
    op.create_index("ix_backups_account_server", "backups", ["account_id", "region", "server_name"])
    op.create_table(
        "tags",
        sa.Column("resource_arn", sa.String(1024), nullable=False),
        sa.Column("key", sa.String(128), nullable=False),
        sa.Column("value", sa.String(256), nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("resource_arn", "key"),
    )


def downgrade() -> None:
    op.drop_table("tags")
    op.drop_table("backups")
    op.drop_table("events")
    op.drop_column("jobs", "payload")
    for column in ("last_maintenance_at", "last_automated_backup_at", "maintenance_status"):
        op.drop_column("servers", column)
