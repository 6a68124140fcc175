"""Webhook subscriptions, their deliveries and each delivery's attempts

The tables of ``connectors/webhook_store.py``: a user's subscriptions (URL, event types, the
signing secret), one delivery per status event per subscription (unique on both: the sender is
at least once), every POST of it, and the owner of each video as the sender learnt it from
``ingest.started``. A user's subscriptions go with the user.

Revision ID: 0006_webhooks
Revises: 0004_api_token_scopes (to become 0005_video_tombstones once that is merged)
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006_webhooks"
down_revision = "0005_video_tombstones"
branch_labels = None
depends_on = None


def _when(name: str, nullable: bool = False, now: bool = False) -> sa.Column[datetime]:
    default = sa.func.now() if now else None
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable, server_default=default)


def upgrade() -> None:
    op.create_table(
        "webhook_subscriptions",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "user_id", sa.Integer(), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("owner", sa.String(64), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("event_types", postgresql.ARRAY(sa.String(32)), nullable=False),
        sa.Column("secret", sa.Text(), nullable=False),
        _when("created_at", now=True),
    )
    op.create_index("ix_webhook_subscriptions_user_id", "webhook_subscriptions", ["user_id"])
    op.create_index("ix_webhook_subscriptions_owner", "webhook_subscriptions", ["owner"])
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.BigInteger(), primary_key=True),
        sa.Column(
            "subscription_id",
            sa.Integer(),
            sa.ForeignKey("webhook_subscriptions.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.Column("event_type", sa.String(32), nullable=False),
        sa.Column("video_id", sa.String(64), nullable=False),
        sa.Column("msg_id", sa.String(64), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        _when("next_attempt_at"),
        _when("expires_at"),
        _when("created_at", now=True),
        _when("delivered_at", nullable=True),
        sa.Column("last_status", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=False, server_default=""),
        sa.UniqueConstraint("subscription_id", "event_id", name="uq_webhook_deliveries_event"),
        sa.CheckConstraint(
            "state IN ('pending', 'delivered', 'failed')", name="ck_webhook_deliveries_state"
        ),
    )
    op.create_index("ix_webhook_deliveries_due", "webhook_deliveries", ["state", "next_attempt_at"])
    op.create_table(
        "webhook_attempts",
        sa.Column("id", sa.BigInteger(), primary_key=True),
        sa.Column(
            "delivery_id",
            sa.BigInteger(),
            sa.ForeignKey("webhook_deliveries.id", ondelete="CASCADE"),
            nullable=False,
        ),
        _when("at"),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=False, server_default=""),
        sa.Column("duration_ms", sa.Integer(), nullable=False, server_default="0"),
    )
    op.create_index("ix_webhook_attempts_delivery_id", "webhook_attempts", ["delivery_id"])
    op.create_table(
        "webhook_video_owners",
        sa.Column("video_id", sa.String(64), primary_key=True),
        sa.Column("owner", sa.String(64), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("webhook_video_owners")
    op.drop_table("webhook_attempts")
    op.drop_table("webhook_deliveries")
    op.drop_table("webhook_subscriptions")
