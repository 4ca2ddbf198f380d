"""Node names in force (one row per name, any engine), server revisions, backends and name
policies, job backoff, and indexes for pruning old tokens and events.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

from opscm.pki.keys import public_key_fingerprint

from opscm.store.schema import UtcDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# Names in force before this migration were associated by no token that still matters.
MIGRATED_TOKEN = "0" * 64


def upgrade() -> None:
    # Plain ADD COLUMN: a batch (copy and rename) of `servers` on SQLite would fire ON DELETE CASCADE.
    op.add_column("servers", sa.Column("revision", sa.Integer, nullable=False, server_default="0"))
    op.add_column("servers", sa.Column("backend", sa.String(64), nullable=True))
    op.add_column("servers", sa.Column("node_name_policy", sa.String(16), nullable=False, server_default="UNIQUE"))
    op.add_column("jobs", sa.Column("run_after", UtcDateTime, nullable=True))
    nodes = op.create_table(
        "nodes",
        sa.Column("server_id", sa.String(36), sa.ForeignKey("servers.id", ondelete="CASCADE"), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("ref", sa.Text, nullable=True),
        sa.Column("changed_at", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("server_id", "name"),
    )
    op.create_index("ix_associations_created", "associations", ["created_at"])
    op.create_index("ix_events_created", "events", ["created_at"])
    _backfill(nodes)


def _backfill(nodes: sa.Table) -> None:
    """Names in force today: each active Puppet certificate, each Chef client; and the public CA
    certificate into the server's engine data (DescribeServers then needs no second query)."""
    bind = op.get_bind()
    meta = sa.MetaData()
    cas = sa.Table("puppet_cas", meta, autoload_with=bind)
    certs = sa.Table("puppet_certificates", meta, autoload_with=bind)
    clients = sa.Table("chef_clients", meta, autoload_with=bind)
    servers = sa.table("servers", sa.column("id", sa.String), sa.column("engine_data", sa.JSON))
    for server_id, data, cert_pem in bind.execute(
        sa.select(servers.c.id, servers.c.engine_data, cas.c.cert_pem).join(cas, cas.c.server_id == servers.c.id)
    ):
        data = dict(data or {}, ca_cert_pem=cert_pem)
        bind.execute(sa.update(servers).where(servers.c.id == server_id).values(engine_data=data))
    rows: dict[tuple[str, str], dict] = {}
    for server_id, certname, serial, not_after in bind.execute(
        sa.select(certs.c.server_id, certs.c.certname, certs.c.serial, certs.c.not_after)
        .where(certs.c.revoked_at.is_(None))
        .order_by(certs.c.serial)
    ):
        rows[(server_id, certname)] = _row(server_id, certname, str(serial), not_after)
    for server_id, name, public_key_pem, created_at in bind.execute(
        sa.select(clients.c.server_id, clients.c.name, clients.c.public_key_pem, clients.c.created_at)
    ):
        rows[(server_id, name)] = _row(server_id, name, public_key_fingerprint(public_key_pem), created_at)
    if rows:
        op.bulk_insert(nodes, list(rows.values()))


def _row(server_id, name, ref, changed_at) -> dict:
    return {
        "server_id": server_id,
        "name": name,
        "state": "ASSOCIATED",
        "token_hash": MIGRATED_TOKEN,
        "ref": ref,
        "changed_at": changed_at,
    }


def downgrade() -> None:
    op.drop_index("ix_events_created", "events")
    op.drop_index("ix_associations_created", "associations")
    op.drop_table("nodes")
    op.drop_column("jobs", "run_after")
    for column in ("node_name_policy", "backend", "revision"):
        op.drop_column("servers", column)
