"""Webhook subscriptions and deliveries in PostgreSQL: the tables and the records read from them.

``connectors/webhook_store.py`` holds every query on these tables; this module only says what
they are (``portal/migrations/versions/0006_webhooks.py`` creates exactly these).
"""

from __future__ import annotations

from datetime import datetime

import msgspec
from sqlalchemy import (
    BigInteger,
    Boolean,
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
    func,
)
from sqlalchemy.dialects.postgresql import ARRAY

from core import events as ev

__all__ = [
    "EVENT_TYPES",
    "MAX_SUBSCRIPTIONS",
    "Attempt",
    "Delivery",
    "DueDelivery",
    "Subscription",
    "attempts_table",
    "deliveries_table",
    "metadata",
    "subscriptions",
    "video_owners",
]

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32  # the Standard Webhooks scheme asks for 24 to 64
MAX_SUBSCRIPTIONS = 20  # per user: each is a POST per matching event
EVENT_TYPES: tuple[str, ...] = tuple(
    tag for tag, cls in ev.TYPES.items() if getattr(cls, "topic", "") == "status"
)

metadata = MetaData()

subscriptions = Table(
    "webhook_subscriptions",
    metadata,
    Column("id", Integer, primary_key=True),
    # the user's row goes with the user (ON DELETE CASCADE, in the migration)
    Column("user_id", Integer, nullable=False, index=True),
    Column("owner", String(64), nullable=False, index=True),
    Column("url", Text, nullable=False),
    Column("event_types", ARRAY(String(32)), nullable=False),
    Column("secret", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

deliveries_table = Table(
    "webhook_deliveries",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column(
        "subscription_id",
        Integer,
        ForeignKey("webhook_subscriptions.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("event_id", String(64), nullable=False),
    Column("event_type", String(32), nullable=False),
    Column("video_id", String(64), nullable=False),
    Column("msg_id", String(64), nullable=False),
    Column("body", LargeBinary, nullable=False),
    Column("state", String(16), nullable=False),  # pending, delivered, failed
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("delivered_at", DateTime(timezone=True), nullable=True),
    Column("last_status", Integer, nullable=True),
    Column("last_error", Text, nullable=False, default=""),
    UniqueConstraint("subscription_id", "event_id", name="uq_webhook_deliveries_event"),
    Index("ix_webhook_deliveries_due", "state", "next_attempt_at"),
)

attempts_table = Table(
    "webhook_attempts",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column(
        "delivery_id",
        BigInteger,
        ForeignKey("webhook_deliveries.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("ok", Boolean, nullable=False),
    Column("status_code", Integer, nullable=True),
    Column("error", Text, nullable=False, default=""),
    Column("duration_ms", Integer, nullable=False, default=0),
)

video_owners = Table(
    "webhook_video_owners",
    metadata,
    Column("video_id", String(64), primary_key=True),
    Column("owner", String(64), nullable=False),
)


class Subscription(msgspec.Struct, frozen=True, kw_only=True):
    """A user's subscription; ``secret`` is the ``whsec_…`` signing key."""

    id: int
    user_id: int
    owner: str
    url: str
    event_types: list[str]
    secret: str
    created_at: datetime


class Delivery(msgspec.Struct, frozen=True, kw_only=True):
    """One event for one subscription, and where its sending stands."""

    id: int
    subscription_id: int
    event_id: str
    event_type: str
    video_id: str
    msg_id: str
    state: str
    attempts: int
    next_attempt_at: datetime
    expires_at: datetime
    created_at: datetime
    delivered_at: datetime | None
    last_status: int | None
    last_error: str


class DueDelivery(msgspec.Struct, frozen=True, kw_only=True):
    """What the sender needs to POST a delivery: where, signed with what, which bytes."""

    id: int
    url: str
    secret: str
    msg_id: str
    body: bytes
    attempts: int
    expires_at: datetime


class Attempt(msgspec.Struct, frozen=True, kw_only=True):
    """One POST of a delivery: the answer's status code or a short public error."""

    id: int
    delivery_id: int
    at: datetime
    ok: bool
    status_code: int | None
    error: str
    duration_ms: int
