"""The tables. Every row belongs to one (account, region), directly or through its server."""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.types import TypeDecorator


class UtcDateTime(TypeDecorator):
    """Aware UTC datetimes in, aware UTC datetimes out (SQLite forgets the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store")
        return value.astimezone(timezone.utc)

    def process_result_value(self, value: datetime | None, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


metadata = MetaData()

access_keys = Table(
    "access_keys",
    metadata,
    Column("access_key_id", String(128), primary_key=True),
    Column("account_id", String(12), nullable=False),
    Column("secret_enc", LargeBinary, nullable=False),
    Column("name", String(128), nullable=False),
    Column("actions", JSON, nullable=False),
    Column("server_names", JSON, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
)

servers = Table(
    "servers",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("account_id", String(12), nullable=False),
    Column("region", String(64), nullable=False),
    Column("name", String(40), nullable=False),
    Column("engine", String(32), nullable=False),
    Column("engine_model", String(32), nullable=False),
    Column("engine_version", String(16), nullable=False),
    Column("status", String(32), nullable=False),
    Column("status_reason", Text, nullable=True),
    Column("endpoint", String(255), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("settings", JSON, nullable=False),
    Column("engine_data", JSON, nullable=False),
    Column("maintenance_status", String(16), nullable=True),
    # When the scheduler last started an automated backup / maintenance (one per window).
    Column("last_automated_backup_at", UtcDateTime, nullable=True),
    Column("last_maintenance_at", UtcDateTime, nullable=True),
    # Bumped by every save: a cached copy is checked against it inside the association transaction.
    Column("revision", Integer, nullable=False, server_default="0"),
    # The operator's backend (a name of the configuration file) or None for the built-in engine.
    Column("backend", String(64), nullable=True),
    # Who may take a node name that is in force (see opscm.domain.nodes.NodeNamePolicy).
    Column("node_name_policy", String(16), nullable=False, server_default="UNIQUE"),
    UniqueConstraint("account_id", "region", "name", name="uq_servers_account_region_name"),
)

puppet_cas = Table(
    "puppet_cas",
    metadata,
    Column("server_id", String(36), ForeignKey("servers.id", ondelete="CASCADE"), primary_key=True),
    Column("key_enc", LargeBinary, nullable=False),
    Column("cert_pem", Text, nullable=False),
    Column("next_serial", BigInteger, nullable=False),
    Column("crl_number", BigInteger, nullable=False),
    Column("crl_pem", Text, nullable=False),
)

puppet_certificates = Table(
    "puppet_certificates",
    metadata,
    Column("server_id", String(36), ForeignKey("servers.id", ondelete="CASCADE"), primary_key=True),
    Column("serial", BigInteger, primary_key=True),
    Column("certname", String(255), nullable=False),
    Column("cert_pem", Text, nullable=False),
    Column("not_after", UtcDateTime, nullable=False),
    Column("revoked_at", UtcDateTime, nullable=True),
    Index("ix_puppet_certificates_certname", "server_id", "certname"),
    # The console's listings: revoked certificates (newest first) and those expiring soon.
    Index("ix_puppet_certificates_revocation", "server_id", "revoked_at", "not_after"),
)

chef_clients = Table(
    "chef_clients",
    metadata,
    Column("server_id", String(36), ForeignKey("servers.id", ondelete="CASCADE"), primary_key=True),
    Column("organization", String(255), primary_key=True),
    Column("name", String(255), primary_key=True),
    Column("public_key_pem", Text, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
)

# Who holds each node name of a server: one row per name in force (or being changed), for every
# engine. Its primary key is what makes concurrent associations of one name safe on every store.
nodes = Table(
    "nodes",
    metadata,
    Column("server_id", String(36), ForeignKey("servers.id", ondelete="CASCADE"), primary_key=True),
    Column("name", String(255), primary_key=True),
    Column("state", String(16), nullable=False),
    Column("token_hash", String(64), nullable=False),
    # The engine's handle on what is in force: a certificate serial, a key fingerprint.
    Column("ref", Text, nullable=True),
    Column("changed_at", UtcDateTime, nullable=False),
)

associations = Table(
    "associations",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("account_id", String(12), nullable=False),
    Column("region", String(64), nullable=False),
    Column("server_id", String(36), ForeignKey("servers.id", ondelete="CASCADE"), nullable=False),
    Column("node_name", String(10000), nullable=False),
    Column("action", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("status_reason", Text, nullable=True),
    Column("engine_attributes", JSON, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Index("ix_associations_server", "server_id"),
    Index("ix_associations_created", "created_at"),
)

jobs = Table(
    "jobs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(32), nullable=False),
    Column("server_id", String(36), ForeignKey("servers.id", ondelete="CASCADE"), nullable=False),
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("lease_until", UtcDateTime, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("payload", JSON, nullable=True),
    # Not before this time (a retry's backoff); None: at once.
    Column("run_after", UtcDateTime, nullable=True),
    Index("ix_jobs_state", "state"),
)

events = Table(
    "events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("server_id", String(36), ForeignKey("servers.id", ondelete="CASCADE"), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("message", Text, nullable=False),
    Column("log_url", Text, nullable=True),
    Index("ix_events_server", "server_id", "id"),
    Index("ix_events_created", "created_at"),
)

# Backups outlive their server (manual ones are kept after DeleteServer), so no foreign key.
backups = Table(
    "backups",
    metadata,
    Column("id", String(79), primary_key=True),
    Column("account_id", String(12), nullable=False),
    Column("region", String(64), nullable=False),
    Column("server_id", String(36), nullable=False),
    Column("server_name", String(40), nullable=False),
    Column("backup_type", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("status_description", Text, nullable=True),
    Column("description", Text, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    # The server as it was (engine, settings), echoed by DescribeBackups and used by restores.
    Column("server_snapshot", JSON, nullable=False),
    Column("size_bytes", BigInteger, nullable=True),
    Column("location", Text, nullable=True),
    Index("ix_backups_account_server", "account_id", "region", "server_name"),
)

tags = Table(
    "tags",
    metadata,
    Column("resource_arn", String(1024), primary_key=True),
    Column("key", String(128), primary_key=True),
    Column("value", String(256), nullable=False),
    Column("position", Integer, nullable=False),
)
