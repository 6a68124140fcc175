"""Webhook subscriptions in the portal: a page and a JSON API, each user for their own.

A user subscribes a URL to status event types and gets a signing secret, shown once, in the
answer that made it (the sender needs the secret to sign, so it is kept; it is never shown
again). The delivery log of a subscription lists every event sent to it with each attempt, and
"send again" queues a delivery once more. Everything here reaches the tables through
``connectors.webhook_store``; the sender (``webhooks/``) is a process of its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import msgspec
from litestar import Request, Router, delete, get, post
from litestar.exceptions import NotFoundException, ValidationException
from litestar.params import FromPath, JSONBody
from litestar.plugins.htmx import HTMXRequest, HTMXTemplate
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_200_OK, HTTP_202_ACCEPTED, HTTP_400_BAD_REQUEST
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from connectors import webhook_store as store
from connectors.webhook_targets import TargetRefused, check_target
from core.errors import public_reason
from core.logs import get_logger
from core.settings import Settings
from portal.auth import Viewer, viewer_of
from portal.deps import Sessions, SettingsDep

__all__ = [
    "DeliveryQueued",
    "SubscriptionCreated",
    "SubscriptionOut",
    "WebhookRequest",
    "webhooks_router",
]

log = get_logger("vidflow.portal.webhooks")
DEFAULT_TYPES = ("job.completed", "job.failed")
T = TypeVar("T")


class WebhookRequest(msgspec.Struct, kw_only=True):
    """A new subscription: where to POST, and which status event types."""

    url: str
    event_types: list[str] = msgspec.field(default_factory=lambda: list(DEFAULT_TYPES))


class SubscriptionOut(msgspec.Struct, kw_only=True):
    """A subscription as the API lists it (never its secret)."""

    id: int
    url: str
    event_types: list[str]
    created_at: datetime


class SubscriptionCreated(SubscriptionOut, kw_only=True):
    """The answer that made a subscription: the one place its secret is shown."""

    secret: str


class AttemptOut(msgspec.Struct, kw_only=True):
    """One POST of a delivery."""

    at: datetime
    ok: bool
    status_code: int | None
    error: str


class DeliveryOut(msgspec.Struct, kw_only=True):
    """One event sent (or being sent) to a subscription, with its attempts."""

    id: int
    event_id: str
    event_type: str
    video_id: str
    webhook_id: str
    state: str
    attempts: list[AttemptOut]
    next_attempt_at: datetime | None
    created_at: datetime


class DeliveryQueued(msgspec.Struct, kw_only=True):
    """The answer to "send again": the delivery is due at once (``status`` is ``queued``)."""

    delivery_id: int
    status: str = "queued"


async def _db(sessions: async_sessionmaker[AsyncSession], work: Callable[[Connection], T]) -> T:
    """Run a synchronous store function in one transaction of the portal's async pool."""
    async with sessions() as session, session.begin():
        conn = await session.connection()
        return await conn.run_sync(work)


def _out(sub: store.Subscription) -> SubscriptionOut:
    return SubscriptionOut(
        id=sub.id, url=sub.url, event_types=sub.event_types, created_at=sub.created_at
    )


async def _create(
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    viewer: Viewer,
    request: WebhookRequest,
) -> store.Subscription:
    """Check and store a subscription; ``ValidationException`` with a public reason if not."""
    types = sorted(set(request.event_types))
    unknown = [t for t in types if t not in store.EVENT_TYPES]
    if not types or unknown:
        raise ValidationException(
            f"event types must be some of {', '.join(store.EVENT_TYPES)}"
            + (f" (not {', '.join(unknown)[:200]})" if unknown else "")
        )
    try:
        url = await asyncio.to_thread(
            check_target, request.url, allow_private=settings.webhooks.allow_private
        )
    except TargetRefused as exc:
        raise ValidationException(public_reason("the URL was refused", str(exc))) from None

    def create(conn: Connection) -> store.Subscription:
        if len(store.list_subscriptions(conn, viewer.username)) >= store.MAX_SUBSCRIPTIONS:
            raise ValidationException(f"at most {store.MAX_SUBSCRIPTIONS} subscriptions a user")
        return store.create_subscription(
            conn, user_id=viewer.id, owner=viewer.username, url=url, event_types=types
        )

    created = await _db(sessions, create)
    log.info("webhook subscribed", user=viewer.username, subscription=created.id, types=types)
    return created


async def _own(
    sessions: async_sessionmaker[AsyncSession], viewer: Viewer, subscription_id: int
) -> store.Subscription:
    found = await _db(
        sessions, lambda c: store.get_subscription(c, subscription_id, viewer.username)
    )
    if found is None:
        raise NotFoundException(f"no webhook {subscription_id}")
    return found


async def _log(
    sessions: async_sessionmaker[AsyncSession], sub: store.Subscription
) -> list[DeliveryOut]:
    def read(conn: Connection) -> list[DeliveryOut]:
        rows = store.deliveries(conn, sub.id)
        tries = store.attempts_of(conn, [d.id for d in rows])
        return [
            DeliveryOut(
                id=d.id,
                event_id=d.event_id,
                event_type=d.event_type,
                video_id=d.video_id,
                webhook_id=d.msg_id,
                state=d.state,
                attempts=[
                    AttemptOut(at=a.at, ok=a.ok, status_code=a.status_code, error=a.error)
                    for a in tries[d.id]
                ],
                next_attempt_at=d.next_attempt_at if d.state == "pending" else None,
                created_at=d.created_at,
            )
            for d in rows
        ]

    return await _db(sessions, read)


async def _send_again(
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    sub: store.Subscription,
    delivery_id: int,
) -> None:
    max_age = timedelta(hours=settings.webhooks.max_age_hours)
    now = datetime.now(UTC)
    if not await _db(sessions, lambda c: store.send_again(c, delivery_id, sub.id, now, max_age)):
        raise NotFoundException(f"no delivery {delivery_id}")


# ------------------------------------------------------------------ JSON API


@get("/api/webhooks")
async def api_list(request: Request[Any, Any, Any], sessions: Sessions) -> list[SubscriptionOut]:
    """The caller's subscriptions (never their secrets)."""
    viewer = viewer_of(request)
    subs = await _db(sessions, lambda c: store.list_subscriptions(c, viewer.username))
    return [_out(s) for s in subs]


@post("/api/webhooks")
async def api_create(
    request: Request[Any, Any, Any],
    settings: SettingsDep,
    sessions: Sessions,
    data: JSONBody[WebhookRequest],
) -> SubscriptionCreated:
    """Subscribe a URL; the answer holds the signing secret, which is never shown again."""
    sub = await _create(settings, sessions, viewer_of(request), data)
    return SubscriptionCreated(**msgspec.structs.asdict(_out(sub)), secret=sub.secret)


@delete("/api/webhooks/{subscription_id:int}")
async def api_delete(
    request: Request[Any, Any, Any], sessions: Sessions, subscription_id: FromPath[int]
) -> None:
    """Unsubscribe (the delivery log goes with it)."""
    viewer = viewer_of(request)
    if not await _db(
        sessions, lambda c: store.delete_subscription(c, subscription_id, viewer.username)
    ):
        raise NotFoundException(f"no webhook {subscription_id}")


@get("/api/webhooks/{subscription_id:int}/deliveries")
async def api_deliveries(
    request: Request[Any, Any, Any], sessions: Sessions, subscription_id: FromPath[int]
) -> list[DeliveryOut]:
    """The delivery log of a subscription, newest first, with every attempt."""
    return await _log(sessions, await _own(sessions, viewer_of(request), subscription_id))


@post(
    "/api/webhooks/{subscription_id:int}/deliveries/{delivery_id:int}/send-again",
    status_code=HTTP_202_ACCEPTED,
)
async def api_send_again(
    request: Request[Any, Any, Any],
    settings: SettingsDep,
    sessions: Sessions,
    subscription_id: FromPath[int],
    delivery_id: FromPath[int],
) -> DeliveryQueued:
    """Queue a delivery once more (same id and body), due at once."""
    sub = await _own(sessions, viewer_of(request), subscription_id)
    await _send_again(settings, sessions, sub, delivery_id)
    return DeliveryQueued(delivery_id=delivery_id)


# ------------------------------------------------------------------ pages


async def _page(
    request: HTMXRequest,
    sessions: async_sessionmaker[AsyncSession],
    status_code: int = HTTP_200_OK,
    **shown: Any,
) -> Template:
    viewer = viewer_of(request)
    subs = await _db(sessions, lambda c: store.list_subscriptions(c, viewer.username))
    context = {
        "subscriptions": subs,
        "event_types": store.EVENT_TYPES,
        "default_types": DEFAULT_TYPES,
        "created": None,
        "error": "",
        "url": "",
        **shown,
    }
    headers = {"Cache-Control": "no-store"} if context["created"] else None
    return Template(
        template_name="webhooks.html", context=context, status_code=status_code, headers=headers
    )


@get("/webhooks", include_in_schema=False)
async def webhooks_page(request: HTMXRequest, sessions: Sessions) -> Template:
    """The user's subscriptions and a form for a new one."""
    return await _page(request, sessions)


@post("/webhooks", status_code=HTTP_200_OK, include_in_schema=False)
async def create_webhook(
    request: HTMXRequest, settings: SettingsDep, sessions: Sessions
) -> Template:
    """Subscribe from the form; the answer shows the secret once."""
    form = await request.form()
    url = str(form.get("url") or "")
    wanted = WebhookRequest(url=url, event_types=[str(t) for t in form.getall("event_types")])
    try:
        created = await _create(settings, sessions, viewer_of(request), wanted)
    except ValidationException as exc:
        return await _page(request, sessions, HTTP_400_BAD_REQUEST, error=exc.detail, url=url)
    return await _page(request, sessions, created=created)


@post("/webhooks/{subscription_id:int}/delete", include_in_schema=False)
async def delete_webhook(
    request: HTMXRequest, sessions: Sessions, subscription_id: FromPath[int]
) -> Redirect:
    """Unsubscribe from the page."""
    viewer = viewer_of(request)
    await _db(sessions, lambda c: store.delete_subscription(c, subscription_id, viewer.username))
    return Redirect("/webhooks", status_code=303)


@get("/webhooks/{subscription_id:int}", include_in_schema=False)
async def deliveries_page(
    request: HTMXRequest, sessions: Sessions, subscription_id: FromPath[int]
) -> Template:
    """The delivery log of one subscription; an HTMX request gets only the log."""
    sub = await _own(sessions, viewer_of(request), subscription_id)
    context = {"sub": sub, "deliveries": await _log(sessions, sub)}
    if request.htmx:
        return HTMXTemplate(template_name="_deliveries.html", context=context)
    return Template(template_name="webhook.html", context=context)


@post(
    "/webhooks/{subscription_id:int}/deliveries/{delivery_id:int}/send-again",
    status_code=HTTP_200_OK,
    include_in_schema=False,
)
async def send_again_button(
    request: HTMXRequest,
    settings: SettingsDep,
    sessions: Sessions,
    subscription_id: FromPath[int],
    delivery_id: FromPath[int],
) -> Template:
    """The "send again" button: queue it, answer with the refreshed log."""
    sub = await _own(sessions, viewer_of(request), subscription_id)
    await _send_again(settings, sessions, sub, delivery_id)
    context = {"sub": sub, "deliveries": await _log(sessions, sub), "queued": delivery_id}
    return HTMXTemplate(template_name="_deliveries.html", context=context)


webhooks_router = Router(
    path="/",
    route_handlers=[
        api_list, api_create, api_delete, api_deliveries, api_send_again,
        webhooks_page, create_webhook, delete_webhook, deliveries_page, send_again_button,
    ],
)  # fmt: skip
