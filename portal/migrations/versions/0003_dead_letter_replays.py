"""dead-letter replays move out of the projection; uploads record when a completion claimed them

``dead_letters.replayed_at`` was portal state inside a table a rebuild truncates, so a rebuilt
projection differed from the live one after any replay. Replays now have a table of their own.

Revision ID: 0003_dead_letter_replays
Revises: 0002_upload_video_id
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_dead_letter_replays"
down_revision = "0002_upload_video_id"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dead_letter_replays",
        sa.Column("letter_id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column(
            "requested_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("replayed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("error", sa.Text(), server_default="", nullable=False),
        sa.PrimaryKeyConstraint("letter_id"),
    )
    op.execute(
        "INSERT INTO dead_letter_replays (letter_id, status, count, requested_at, replayed_at)"
        " SELECT id, 'replayed', 1, replayed_at, replayed_at FROM dead_letters"
        " WHERE replayed_at IS NOT NULL"
    )
    op.drop_column("dead_letters", "replayed_at")
    op.add_column("uploads", sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column("uploads", "claimed_at")
    op.add_column(
        "dead_letters", sa.Column("replayed_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.execute(
        "UPDATE dead_letters d SET replayed_at = r.replayed_at"
        " FROM dead_letter_replays r WHERE r.letter_id = d.id"
    )
    op.drop_table("dead_letter_replays")
