"""uploads remember the video they became

Revision ID: 0002_upload_video_id
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_upload_video_id"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "uploads",
        sa.Column("video_id", sa.String(length=64), nullable=False, server_default=""),
    )
    op.create_index("ix_uploads_owner", "uploads", ["owner"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_uploads_owner", table_name="uploads")
    op.drop_column("uploads", "video_id")
