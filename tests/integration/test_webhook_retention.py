"""The delivery log does not grow forever: deliveries that ended more than
``VIDFLOW_WEBHOOKS_KEEP_DAYS`` ago are pruned with their attempts, pending ones never."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec
import pytest
from sqlalchemy import Connection, create_engine, select, update

from connectors import webhook_store as store
from connectors.webhook_tables import attempts_table, deliveries_table
from core.settings import Settings, SettingsError, load_settings
from portal.auth.accounts import create_user
from webhooks.sender import Sender


def _delivery(conn: Connection, sub: store.Subscription, event: str, now: datetime) -> int:
    store.enqueue(
        conn, sub, event_id=event, event_type="job.completed", video_id="v", msg_id=f"m-{event}",
        body=b"{}", due=now, max_age=timedelta(hours=24),
    )  # fmt: skip
    found = conn.execute(
        select(deliveries_table.c.id).where(deliveries_table.c.event_id == event)
    ).scalar_one()
    return int(found)


def test_deliveries_that_ended_long_ago_are_pruned_and_pending_ones_kept(
    portal_settings: Settings,
) -> None:
    settings = msgspec.structs.replace(
        portal_settings, webhooks=msgspec.structs.replace(portal_settings.webhooks, keep_days=7)
    )
    engine = create_engine(settings.postgres.url)
    now = datetime.now(UTC)
    old, recent = now - timedelta(days=8), now - timedelta(days=1)
    user_id = create_user(settings, "hooked", "a-password-long-enough", "uploader")
    with engine.begin() as conn:
        sub = store.create_subscription(
            conn, user_id=user_id, owner="hooked", url="https://example.org/hook",
            event_types=["job.completed"],
        )  # fmt: skip
        ids = {e: _delivery(conn, sub, e, old) for e in ("old-ok", "old-failed", "old-pending")}
        ids["new-ok"] = _delivery(conn, sub, "new-ok", recent)
        for event, ok, retry in (
            ("old-ok", True, None), ("old-failed", False, None), ("old-pending", False, old),
            ("new-ok", True, None),
        ):  # fmt: skip
            at = recent if event == "new-ok" else old
            store.record_attempt(
                conn, ids[event], at=at, ok=ok, status_code=200 if ok else 500,
                error="" if ok else "500", duration_ms=5, retry_at=retry,
            )  # fmt: skip
        conn.execute(  # a pending delivery long overdue is still pending, never pruned
            update(deliveries_table)
            .where(deliveries_table.c.id == ids["old-pending"])
            .values(next_attempt_at=old)
        )

    sender = Sender(settings, engine)
    try:
        assert sender.prune() == 2
        assert sender.prune() == 0  # nothing more
    finally:
        sender.consumer.close()
        sender.http.close()
        sender.pool.shutdown()

    with engine.connect() as conn:
        left = set(conn.execute(select(deliveries_table.c.event_id)).scalars())
        attempts = set(conn.execute(select(attempts_table.c.delivery_id)).scalars())
    engine.dispose()
    assert left == {"old-pending", "new-ok"}
    assert attempts == {ids["old-pending"], ids["new-ok"]}  # the pruned ones' went with them


def test_keep_days_must_be_positive() -> None:
    with pytest.raises(SettingsError, match="KEEP_DAYS"):
        load_settings({"VIDFLOW_WEBHOOKS_KEEP_DAYS": "0"})
