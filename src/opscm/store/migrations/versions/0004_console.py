"""An index for the web console's certificate listings: a server's revoked certificates, and its
certificates in force that expire soon, without reading all of them.

Revision ID: 0004
Revises: 0003
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_puppet_certificates_revocation", "puppet_certificates", ["server_id", "revoked_at", "not_after"]
    )


def downgrade() -> None:
    op.drop_index("ix_puppet_certificates_revocation", "puppet_certificates")
