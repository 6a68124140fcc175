"""Deleted videos leave a tombstone, so no later event of theirs brings them back

Revision ID: 0005_video_tombstones
Revises: 0004_api_token_scopes
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_video_tombstones"
down_revision = "0004_api_token_scopes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "video_tombstones",
        sa.Column("video_id", sa.String(length=64), primary_key=True),
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("requested_by", sa.String(length=64), nullable=False, server_default=""),
        sa.Column("ts", sa.Float(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("video_tombstones")
