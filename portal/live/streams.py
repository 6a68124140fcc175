"""Server-sent events: re-rendered rows of the videos list, or one video's status block and
timeline, whenever the projector commits a change (heard by :class:`portal.live.hub.NotifyHub`).
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

from litestar import Request, get
from litestar.params import FromPath, FromQuery
from litestar.response import ServerSentEvent
from litestar.response.sse import ServerSentEventMessage
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from portal import queries
from portal.auth import Viewer, viewer_of
from portal.deps import Db, Hub, Renders, Sessions
from portal.fanout import Rendered, SharedRenders
from portal.live.hub import RESYNC
from portal.models import Video
from portal.templating import TemplateRenderer
from portal.videos.access import visible_video

__all__ = ["all_events", "make_renders", "video_events"]

# Event timestamps are the producers' clocks, not commit times: an event made a little before
# a page was rendered may be committed after it. Resyncs look back this much further.
RESYNC_SLACK = 60.0
TIMELINE = "_timeline.html"


async def _row_events(
    hub: Hub,
    sessions: Sessions,
    renders: Renders,
    viewer: Viewer,
    only: str | None,
    since: float | None = None,
    shown: frozenset[str] | None = None,
) -> AsyncGenerator[ServerSentEventMessage, None]:
    """Re-rendered HTML for each changed video; a video new to the page is sent as
    ``video-new`` once (the page prepends it), later changes as ``video-<id>`` (swapped). New
    means not among the rows the page ``shown`` and recent, when the page says what it shows:
    a video whose first event was made before the page but projected after it is new too. For
    one video (``only``): its status block as ``status`` and its timeline as ``timeline``.

    ``since`` is when the page was rendered: whatever changed after it is sent at once, so a
    page whose stream (re)connects late has missed nothing. After the hub lost its LISTEN
    connection (:data:`RESYNC`) what changed meanwhile is sent again the same way.
    """
    queue = hub.subscribe()
    born_after = (since - RESYNC_SLACK) if since is not None else time.time() - 1
    announced: set[str] = set()

    async def changed(after: float) -> list[str]:
        async with sessions() as session:
            ids = await queries.changed_since(session, after - RESYNC_SLACK, viewer.owner_scope)
        return [i for i in ids if only is None or i == only]

    async def messages(video_id: str) -> AsyncIterator[ServerSentEventMessage]:
        if only is not None:
            for template, event in (("_status.html", "status"), (TIMELINE, "timeline")):
                one = await renders.get(video_id, template)
                if one is not None and viewer.sees(one.owner):
                    yield ServerSentEventMessage(data=one.html, event=event)
            return
        row = await renders.get(video_id, "_video_row.html")
        if row is None or not viewer.sees(row.owner):
            return
        new = row.created_ts >= born_after and (shown is None or video_id not in shown)
        if since is not None and shown is None:
            new = new and row.created_ts >= since
        if new and video_id not in announced:
            announced.add(video_id)
            yield ServerSentEventMessage(data=row.html, event="video-new")
        else:
            yield ServerSentEventMessage(data=row.html, event=f"video-{video_id}")

    try:
        pending = await changed(since) if since is not None else []
        while True:
            for video_id in pending:
                async for message in messages(video_id):
                    yield message
            video_id = await queue.get()
            if video_id == RESYNC:
                pending = await changed(hub.lost_at)
            elif only is None or video_id == only:
                pending = [video_id]
            else:
                pending = []
    finally:
        hub.unsubscribe(queue)


def make_renders(
    sessions: async_sessionmaker[AsyncSession], templates: TemplateRenderer
) -> SharedRenders:
    """Loads a changed video once and renders its row (or status block) once for all clients."""

    async def load(video_id: str, template: str) -> Rendered | None:
        async with sessions() as session:
            row = await session.get(Video, video_id)
            if row is None:
                return None
            timeline = await queries.timeline(session, video_id) if template == TIMELINE else []
        html = templates.one_line(template, v=row, timeline=timeline)
        return Rendered(row.owner, row.created_ts, html)

    return SharedRenders(load)


@get("/events", include_in_schema=False)
async def all_events(
    request: Request[Any, Any, Any],
    hub: Hub,
    sessions: Sessions,
    renders: Renders,
    since: FromQuery[float | None] = None,
    shown: FromQuery[str | None] = None,
) -> ServerSentEvent:
    """Server-sent events: a re-rendered row whenever a video the user may see changes (and at
    once every row changed after ``since``, the page's render time)."""
    on_page = None if shown is None else frozenset(i for i in shown.split(",") if i)
    viewer = viewer_of(request)
    return ServerSentEvent(_row_events(hub, sessions, renders, viewer, None, since, on_page))


@get("/videos/{video_id:str}/events", include_in_schema=False)
async def video_events(
    request: Request[Any, Any, Any],
    db: Db,
    hub: Hub,
    sessions: Sessions,
    renders: Renders,
    video_id: FromPath[str],
    since: FromQuery[float | None] = None,
) -> ServerSentEvent:
    """Server-sent events: the status block (``status``) and the timeline (``timeline``) of one
    video whenever it changes (and at once if it changed after ``since``)."""
    await visible_video(db, request, video_id)
    viewer = viewer_of(request)
    return ServerSentEvent(_row_events(hub, sessions, renders, viewer, video_id, since))
