"""Acknowledgements of alert messages from Slack's "Acknowledge" button.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("acked_ts", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("acked_by", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("acked_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index(
        "ix_deliveries_message", "deliveries", ["message_channel_id", "message_ts"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_deliveries_message", table_name="deliveries")
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("acked_at")
        batch.drop_column("acked_by")
        batch.drop_column("acked_ts")
