"""Webhook subscriptions and deliveries in PostgreSQL: every query on their tables.

The portal (which manages subscriptions and shows the delivery log) and the sender (which reads
subscriptions and writes deliveries) are peers that never import each other; both use this
module. Tables are SQLAlchemy Core (``connectors/webhook_tables.py``); each function takes a
synchronous ``Connection`` (the portal calls them through ``AsyncConnection.run_sync``) and
leaves the transaction to its caller.

A delivery is one status event for one subscription, keyed by both, so a status event read
twice (the sender is at least once) is queued once. Its body is stored as the bytes sent, so
every retry and every "send again" POSTs (and signs) the same payload under the same id.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta

import msgspec
from sqlalchemy import (
    Connection,
    and_,
    any_,
    delete,
    func,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert

from connectors.webhook_tables import (
    EVENT_TYPES,
    MAX_SUBSCRIPTIONS,
    SECRET_BYTES,
    SECRET_PREFIX,
    Attempt,
    Delivery,
    DueDelivery,
    Subscription,
    attempts_table,
    deliveries_table,
    subscriptions,
    video_owners,
)

__all__ = [
    "EVENT_TYPES",
    "MAX_SUBSCRIPTIONS",
    "Attempt",
    "Delivery",
    "DueDelivery",
    "Subscription",
    "attempts_of",
    "claim_due",
    "create_subscription",
    "delete_subscription",
    "deliveries",
    "enqueue",
    "get_subscription",
    "list_subscriptions",
    "matching",
    "new_secret",
    "owner_of",
    "prune_finished",
    "record_attempt",
    "remember_owner",
    "send_again",
]


def new_secret() -> str:
    """A fresh signing secret, ``whsec_`` and base64 of 32 random bytes (Standard Webhooks)."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def _subscription(row: object) -> Subscription:
    return msgspec.convert(row, Subscription, from_attributes=True)


def create_subscription(
    conn: Connection, *, user_id: int, owner: str, url: str, event_types: Sequence[str]
) -> Subscription:
    """A new subscription with a new secret (the caller shows the secret once)."""
    row = conn.execute(
        subscriptions.insert()
        .values(
            user_id=user_id,
            owner=owner,
            url=url,
            event_types=sorted(set(event_types)),
            secret=new_secret(),
        )
        .returning(*subscriptions.c)
    ).one()
    return _subscription(row)


def list_subscriptions(conn: Connection, owner: str) -> list[Subscription]:
    """``owner``'s subscriptions, newest first."""
    rows = conn.execute(
        select(subscriptions)
        .where(subscriptions.c.owner == owner)
        .order_by(subscriptions.c.id.desc())
    )
    return [_subscription(r) for r in rows]


def get_subscription(conn: Connection, subscription_id: int, owner: str) -> Subscription | None:
    """The subscription if it is ``owner``'s; someone else's is as missing as an unknown one."""
    row = conn.execute(
        select(subscriptions).where(
            subscriptions.c.id == subscription_id, subscriptions.c.owner == owner
        )
    ).one_or_none()
    return None if row is None else _subscription(row)


def delete_subscription(conn: Connection, subscription_id: int, owner: str) -> bool:
    """Delete ``owner``'s subscription (and its deliveries); whether there was one."""
    result = conn.execute(
        delete(subscriptions).where(
            subscriptions.c.id == subscription_id, subscriptions.c.owner == owner
        )
    )
    return bool(result.rowcount)


def remember_owner(conn: Connection, video_id: str, owner: str) -> None:
    """Record who owns a video (from its ``ingest.started``); owners never move, so the first
    record stands."""
    conn.execute(
        pg_insert(video_owners).values(video_id=video_id, owner=owner).on_conflict_do_nothing()
    )


def owner_of(conn: Connection, video_id: str) -> str | None:
    """Who owns ``video_id``: the sender's own record, else the portal's projection (a video
    ingested before the sender first ran)."""
    own = conn.execute(
        select(video_owners.c.owner).where(video_owners.c.video_id == video_id)
    ).scalar_one_or_none()
    if own is not None:
        return str(own)
    projected = conn.execute(
        text("SELECT owner FROM videos WHERE id = :id"), {"id": video_id}
    ).scalar_one_or_none()
    return None if projected is None else str(projected)


def matching(
    conn: Connection, owner: str, event_type: str, event_time: datetime
) -> list[Subscription]:
    """``owner``'s subscriptions to ``event_type`` that existed when the event happened (a new
    subscription is not flooded with a replayed history)."""
    rows = conn.execute(
        select(subscriptions).where(
            subscriptions.c.owner == owner,
            any_(subscriptions.c.event_types) == event_type,
            subscriptions.c.created_at <= event_time,
        )
    )
    return [_subscription(r) for r in rows]


def enqueue(
    conn: Connection,
    subscription: Subscription,
    *,
    event_id: str,
    event_type: str,
    video_id: str,
    msg_id: str,
    body: bytes,
    due: datetime,
    max_age: timedelta,
) -> bool:
    """Queue one delivery, due at once; False if this event is already queued for it."""
    result = conn.execute(
        pg_insert(deliveries_table)
        .values(
            subscription_id=subscription.id,
            event_id=event_id,
            event_type=event_type,
            video_id=video_id,
            msg_id=msg_id,
            body=body,
            state="pending",
            attempts=0,
            next_attempt_at=due,
            expires_at=due + max_age,
            last_error="",
        )
        .on_conflict_do_nothing(constraint="uq_webhook_deliveries_event")
    )
    return bool(result.rowcount)


def claim_due(conn: Connection, now: datetime, lease: timedelta, limit: int) -> list[DueDelivery]:
    """Up to ``limit`` pending deliveries that are due, pushed ``lease`` into the future so no
    other sender (nor this one's next look) takes them while they are being sent. Rows another
    sender holds are skipped, not waited for."""
    due = (
        select(deliveries_table.c.id)
        .where(deliveries_table.c.state == "pending", deliveries_table.c.next_attempt_at <= now)
        .order_by(deliveries_table.c.next_attempt_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    claimed = (
        conn.execute(
            update(deliveries_table)
            .where(deliveries_table.c.id.in_(due))
            .values(next_attempt_at=now + lease)
            .returning(deliveries_table.c.id)
        )
        .scalars()
        .all()
    )
    if not claimed:
        return []
    rows = conn.execute(
        select(
            deliveries_table.c.id,
            subscriptions.c.url,
            subscriptions.c.secret,
            deliveries_table.c.msg_id,
            deliveries_table.c.body,
            deliveries_table.c.attempts,
            deliveries_table.c.expires_at,
        )
        .join(subscriptions, subscriptions.c.id == deliveries_table.c.subscription_id)
        .where(deliveries_table.c.id.in_(claimed))
        .order_by(deliveries_table.c.id)
    )
    return [msgspec.convert(r, DueDelivery, from_attributes=True) for r in rows]


def record_attempt(
    conn: Connection,
    delivery_id: int,
    *,
    at: datetime,
    ok: bool,
    status_code: int | None,
    error: str,
    duration_ms: int,
    retry_at: datetime | None,
) -> None:
    """Log one POST and move the delivery on: delivered, due again at ``retry_at``, or failed
    for good when there is no ``retry_at``."""
    conn.execute(
        attempts_table.insert().values(
            delivery_id=delivery_id,
            at=at,
            ok=ok,
            status_code=status_code,
            error=error,
            duration_ms=duration_ms,
        )
    )
    state = "delivered" if ok else ("pending" if retry_at is not None else "failed")
    conn.execute(
        update(deliveries_table)
        .where(deliveries_table.c.id == delivery_id)
        .values(
            state=state,
            attempts=deliveries_table.c.attempts + 1,
            last_status=status_code,
            last_error=error,
            delivered_at=at if ok else None,
            next_attempt_at=retry_at if retry_at is not None else at,
        )
    )


def deliveries(conn: Connection, subscription_id: int, limit: int = 50) -> list[Delivery]:
    """The latest deliveries of a subscription, newest first."""
    rows = conn.execute(
        select(*[c for c in deliveries_table.c if c.name != "body"])
        .where(deliveries_table.c.subscription_id == subscription_id)
        .order_by(deliveries_table.c.id.desc())
        .limit(limit)
    )
    return [msgspec.convert(r, Delivery, from_attributes=True) for r in rows]


def attempts_of(conn: Connection, delivery_ids: Sequence[int]) -> dict[int, list[Attempt]]:
    """Every attempt of each delivery, oldest first."""
    found: dict[int, list[Attempt]] = {i: [] for i in delivery_ids}
    if not delivery_ids:
        return found
    rows = conn.execute(
        select(attempts_table)
        .where(attempts_table.c.delivery_id.in_(list(delivery_ids)))
        .order_by(attempts_table.c.id)
    )
    for row in rows:
        attempt = msgspec.convert(row, Attempt, from_attributes=True)
        found[attempt.delivery_id].append(attempt)
    return found


def send_again(
    conn: Connection, delivery_id: int, subscription_id: int, now: datetime, max_age: timedelta
) -> bool:
    """Queue a delivery of this subscription once more, due at once, with a fresh retry window
    (same id and body: a receiver that keeps ids sees it is the same event)."""
    result = conn.execute(
        update(deliveries_table)
        .where(
            and_(
                deliveries_table.c.id == delivery_id,
                deliveries_table.c.subscription_id == subscription_id,
            )
        )
        .values(state="pending", next_attempt_at=now, expires_at=now + max_age)
    )
    return bool(result.rowcount)


def prune_finished(conn: Connection, before: datetime) -> int:
    """Delete the deliveries that ended (delivered, or failed for good) before ``before``,
    with their attempts: the log would otherwise grow with every status event forever.

    A pending delivery is never pruned. An event replayed after its delivery was pruned is
    queued and sent again: receivers keep the ``webhook-id`` (the same for the same event and
    subscription) to see it is one they had."""
    ended = func.coalesce(deliveries_table.c.delivered_at, deliveries_table.c.next_attempt_at)
    result = conn.execute(
        delete(deliveries_table).where(
            and_(deliveries_table.c.state.in_(("delivered", "failed")), ended < before)
        )
    )
    return int(result.rowcount or 0)
