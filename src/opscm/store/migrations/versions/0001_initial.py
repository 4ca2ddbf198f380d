"""Initial schema: credentials, servers, built-in Puppet CA and Chef registry, associations, jobs.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

from opscm.store.schema import UtcDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _server_fk() -> sa.Column:
    return sa.Column("server_id", sa.String(36), sa.ForeignKey("servers.id", ondelete="CASCADE"), nullable=False)


def upgrade() -> None:
    op.create_table(
        "access_keys",
        sa.Column("access_key_id", sa.String(128), primary_key=True),
        sa.Column("account_id", sa.String(12), nullable=False),
        sa.Column("secret_enc", sa.LargeBinary, nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("actions", sa.JSON, nullable=False),
        sa.Column("server_names", sa.JSON, nullable=True),
        sa.Column("created_at", UtcDateTime, nullable=False),
    )
    op.create_table(
        "servers",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("account_id", sa.String(12), nullable=False),
        sa.Column("region", sa.String(64), nullable=False),
        sa.Column("name", sa.String(40), nullable=False),
        sa.Column("engine", sa.String(32), nullable=False),
        sa.Column("engine_model", sa.String(32), nullable=False),
        sa.Column("engine_version", sa.String(16), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("status_reason", sa.Text, nullable=True),
        sa.Column("endpoint", sa.String(255), nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("settings", sa.JSON, nullable=False),
        sa.Column("engine_data", sa.JSON, nullable=False),
        sa.UniqueConstraint("account_id", "region", "name", name="uq_servers_account_region_name"),
    )
    op.create_table(
        "puppet_cas",
        sa.Column("server_id", sa.String(36), sa.ForeignKey("servers.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("key_enc", sa.LargeBinary, nullable=False),
        sa.Column("cert_pem", sa.Text, nullable=False),
        sa.Column("next_serial", sa.BigInteger, nullable=False),
        sa.Column("crl_number", sa.BigInteger, nullable=False),
        sa.Column("crl_pem", sa.Text, nullable=False),
    )
    op.create_table(
        "puppet_certificates",
        _server_fk(),
        sa.Column("serial", sa.BigInteger, nullable=False),
        sa.Column("certname", sa.String(255), nullable=False),
        sa.Column("cert_pem", sa.Text, nullable=False),
        sa.Column("not_after", UtcDateTime, nullable=False),
        sa.Column("revoked_at", UtcDateTime, nullable=True),
        sa.PrimaryKeyConstraint("server_id", "serial"),
    )
    op.create_index("ix_puppet_certificates_certname", "puppet_certificates", ["server_id", "certname"])
    op.create_table(
        "chef_clients",
        _server_fk(),
        sa.Column("organization", sa.String(255), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("public_key_pem", sa.Text, nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("server_id", "organization", "name"),
    )
    op.create_table(
        "associations",
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column("account_id", sa.String(12), nullable=False),
        sa.Column("region", sa.String(64), nullable=False),
        _server_fk(),
        sa.Column("node_name", sa.String(10000), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("status_reason", sa.Text, nullable=True),
        sa.Column("engine_attributes", sa.JSON, nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
    )
    op.create_index("ix_associations_server", "associations", ["server_id"])
    op.create_table(
        "jobs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(32), nullable=False),
        _server_fk(),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("lease_until", UtcDateTime, nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("created_at", UtcDateTime, nullable=False),
    )
    op.create_index("ix_jobs_state", "jobs", ["state"])


def downgrade() -> None:
    for table in ("jobs", "associations", "chef_clients", "puppet_certificates", "puppet_cas", "servers", "access_keys"):
        op.drop_table(table)
