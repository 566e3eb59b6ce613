"""Versioned configuration documents (global, tenant, user).

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "config_documents",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("scope", sa.String(16), nullable=False),
        sa.Column("tenant_id", sa.String(128), nullable=False),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("current_version", sa.Integer, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_config_documents"),
        sa.UniqueConstraint("scope", "tenant_id", "user_id", name="uq_config_documents_identity"),
    )
    op.create_index("ix_config_documents_updated_at", "config_documents", ["updated_at"])
    op.create_table(
        "config_versions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("document_id", sa.Integer, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("content", sa.JSON, nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("author", sa.String(200), nullable=False),
        sa.Column("comment", sa.Text, nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("based_on", sa.Integer, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_config_versions"),
        sa.ForeignKeyConstraint(
            ["document_id"],
            ["config_documents.id"],
            name="fk_config_versions_document_id_config_documents",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint("document_id", "version", name="uq_config_versions_document_version"),
    )
    op.create_index("ix_config_versions_document_id", "config_versions", ["document_id"])


def downgrade() -> None:
    op.drop_index("ix_config_versions_document_id", table_name="config_versions")
    op.drop_table("config_versions")
    op.drop_index("ix_config_documents_updated_at", table_name="config_documents")
    op.drop_table("config_documents")
