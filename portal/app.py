"""The Litestar portal: server-rendered pages (Jinja2 + HTMX), live updates over SSE, JSON API.

One handler serves a whole page or only its fragment, depending on the HTMX request header.
Live progress: the projector commits and NOTIFYs, :class:`portal.live.NotifyHub` hears it, and
each server-sent-event client gets the re-rendered row (or status block) for that video.
"""

from __future__ import annotations

import asyncio
import html
import re
import time
import weakref
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jinja2
import prometheus_client
from confluent_kafka import Producer
from litestar import Litestar, MediaType, Request, Response, get, post
from litestar.datastructures import State
from litestar.exceptions import HTTPException, NotAuthorizedException, NotFoundException
from litestar.params import FromPath, FromQuery
from litestar.plugins.htmx import HTMXPlugin, HTMXRequest, HTMXTemplate
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.response import ServerSentEvent, Stream, Template
from litestar.response.sse import ServerSentEventMessage
from litestar.static_files import create_static_files_router
from litestar.template.config import TemplateConfig
from minio import Minio
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from urllib3 import BaseHTTPResponse

from connectors.db import async_engine
from connectors.kafka import flush_or_raise, make_admin, make_producer, produce_event
from connectors.storage import close_client
from core import events as ev
from core.errors import public_reason
from core.layout import ObjectLayout
from core.logs import get_logger
from core.settings import Settings, get_settings
from portal import queries
from portal.auth import Viewer, auth_middleware, requires_admin, requires_uploader, viewer_of
from portal.deletion import HANDLERS as DELETION_HANDLERS
from portal.error_pages import error_response
from portal.fanout import Rendered, SharedRenders
from portal.filenames import display_filename
from portal.forwarded import forwarded_middleware
from portal.health import readyz
from portal.jobs import api_create_job, request_job
from portal.live import RESYNC, NotifyHub
from portal.login import login, login_page, logout, send_to_login
from portal.login_throttle import LoginThrottle
from portal.models import Video
from portal.operations import (
    api_operations,
    api_replay_dead_letter,
    operations_page,
    replay_dead_letter,
    reprocess_failed,
)
from portal.projection import is_served_object
from portal.security import (
    NulRefusingMiddleware,
    csrf_middleware,
    rate_limit_middleware,
    security_headers,
)
from portal.sessions import SESSION_STORE, session_config, session_store
from portal.tokens import create_token, revoke_token, tokens_page
from portal.uploads import UploadApi, storage_client, upload_page
from portal.webhooks import webhooks_router

__all__ = ["create_app"]

HERE = Path(__file__).parent
STATUSES = ("ingesting", "queued", "transcoding", "completed", "failed", "cancelled")
DOWNLOAD_TTL = timedelta(minutes=15)
# Event timestamps are the producers' clocks, not commit times: an event made a little before
# a page was rendered may be committed after it. Resyncs look back this much further.
RESYNC_SLACK = 60.0
TIMELINE = "_timeline.html"
log = get_logger("vidflow.portal")


def _session(state: State) -> AsyncSession:
    maker: async_sessionmaker[AsyncSession] = state.sessions
    return maker()


def _render(name: str, **context: Any) -> str:
    engine: JinjaTemplateEngine = _APP_TEMPLATES["engine"]
    return engine.get_template(name).render(**context)


_APP_TEMPLATES: dict[str, Any] = {}


async def _visible(state: State, request: Request[Any, Any, Any], video_id: str) -> Video:
    """The video if the user may see it; someone else's is as missing as an unknown one."""
    async with _session(state) as session:
        row = await queries.visible_video(session, video_id, viewer_of(request).owner_scope)
    if row is None:
        raise NotFoundException(f"no video {video_id}")
    return row


@get("/")
async def videos(
    request: HTMXRequest,
    state: State,
    status: FromQuery[str] = "",
    q: FromQuery[str] = "",
    page: FromQuery[int] = 1,
) -> Template:
    """Every video with live progress; an HTMX request gets only the table body."""
    async with _session(state) as session:
        listing = await queries.video_page(
            session, status, q.strip(), page, viewer_of(request).owner_scope
        )
    context = {
        "listing": listing,
        "status": status,
        "q": q,
        "statuses": STATUSES,
        "rendered_at": f"{time.time():.3f}",
    }
    if request.htmx:
        return HTMXTemplate(template_name="_video_table.html", context=context)
    return Template(template_name="videos.html", context=context)


@get("/videos/{video_id:str}")
async def video(request: HTMXRequest, state: State, video_id: FromPath[str]) -> Template:
    """A video: probe, source, manifest, renditions, player, timeline."""
    async with _session(state) as session:
        detail = await queries.video_detail(session, video_id, viewer_of(request).owner_scope)
    if detail is None:
        raise NotFoundException(f"no video {video_id}")
    settings: Settings = state.settings
    storage: Minio = state.storage
    v = detail.video
    downloads = {
        r.height: storage.presigned_get_object(
            settings.storage.bucket,
            r.key,
            expires=DOWNLOAD_TTL,
            response_headers={
                "response-content-disposition": (
                    f'attachment; filename="{_download_name(v.filename or v.id, r.height)}"'
                )
            },
        )  # signed locally (the region is configured): no request to the store
        for r in detail.renditions
    }
    return Template(
        template_name="video.html",
        context={
            "d": detail,
            "timeline": detail.timeline,
            "downloads": downloads,
            "profiles": list(settings.transcode.profiles),
            "default_profile": settings.transcode.default_profile,
            "can_act": viewer_of(request).can_upload,
            "rendered_at": f"{time.time():.3f}",
            "bucket": settings.storage.bucket,
        },
    )


def _download_name(filename: str, height: int) -> str:
    """``holiday-720p.mp4`` from ``holiday.mov``: plain ASCII, safe inside a quoted header."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(filename).stem).strip("._") or "video"
    return f"{stem[:80]}-{height}p.mp4"


@get("/videos/{video_id:str}/files/{key:path}")
async def video_file(
    request: Request[Any, Any, Any], state: State, video_id: FromPath[str], key: FromPath[str]
) -> Stream:
    """Objects of a video (HLS playlists and segments, previews) served same-origin, for the
    player; MP4 downloads are short-lived presigned links to the store (see the video page)."""
    key = key.lstrip("/")
    settings: Settings = state.settings
    # only this video's own outputs, at the prefixes the object layout derives for its id
    if not is_served_object(ObjectLayout(settings.storage), video_id, key):
        raise NotFoundException("no such file")
    await _visible(state, request, video_id)
    storage: Minio = state.storage
    try:
        response = await asyncio.to_thread(storage.get_object, settings.storage.bucket, key)
    except Exception as exc:
        raise NotFoundException("no such file") from exc
    release = _releaser(response)

    async def body() -> AsyncIterator[bytes]:
        try:
            while chunk := await asyncio.to_thread(response.read, 256 * 1024):
                yield chunk
        finally:
            release()

    stream = body()
    # A client gone before the first byte means the generator never runs (nor its finally):
    # the object response is released when the generator is dropped.
    weakref.finalize(stream, release)
    media = response.headers.get("Content-Type", "application/octet-stream")
    return Stream(stream, media_type=media)


def _releaser(response: BaseHTTPResponse) -> Any:
    """Close ``response`` and give its connection back to the pool, once."""
    done: list[bool] = []

    def release() -> None:
        if not done:
            done.append(True)
            response.close()
            response.release_conn()

    return release


async def _row_events(
    hub: NotifyHub,
    state: State,
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
    renders: SharedRenders = state.renders

    async def changed(after: float) -> list[str]:
        async with _session(state) as session:
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


def _renderer(state: State) -> SharedRenders:
    """Loads a changed video once and renders its row (or status block) once for all clients."""

    async def load(video_id: str, template: str) -> Rendered | None:
        async with _session(state) as session:
            row = await session.get(Video, video_id)
            if row is None:
                return None
            timeline = await queries.timeline(session, video_id) if template == TIMELINE else []
        return Rendered(row.owner, row.created_ts, _one_line(template, v=row, timeline=timeline))

    return SharedRenders(load)


def _one_line(template: str, **context: Any) -> str:
    """SSE data lines cannot hold newlines of their own."""
    return _render(template, **context).replace("\n", " ")


@get("/events")
async def all_events(
    request: Request[Any, Any, Any],
    state: State,
    since: FromQuery[float | None] = None,
    shown: FromQuery[str | None] = None,
) -> ServerSentEvent:
    """Server-sent events: a re-rendered row whenever a video the user may see changes (and at
    once every row changed after ``since``, the page's render time)."""
    on_page = None if shown is None else frozenset(i for i in shown.split(",") if i)
    return ServerSentEvent(_row_events(state.hub, state, viewer_of(request), None, since, on_page))


@get("/videos/{video_id:str}/events")
async def video_events(
    request: Request[Any, Any, Any],
    state: State,
    video_id: FromPath[str],
    since: FromQuery[float | None] = None,
) -> ServerSentEvent:
    """Server-sent events: the status block (``status``) and the timeline (``timeline``) of one
    video whenever it changes (and at once if it changed after ``since``)."""
    await _visible(state, request, video_id)
    return ServerSentEvent(_row_events(state.hub, state, viewer_of(request), video_id, since))


def _told(text: str, status_code: int = 201) -> Response[str]:
    """An answer for the page's action buttons: escaped text they show in place."""
    return Response(html.escape(text), status_code=status_code, media_type=MediaType.HTML)


@post("/videos/{video_id:str}/cancel", guards=[requires_uploader])
async def cancel(
    request: Request[Any, Any, Any], state: State, video_id: FromPath[str]
) -> Response[str]:
    """Ask the transcode flow to stop this video's job."""
    await _visible(state, request, video_id)
    settings: Settings = state.settings
    producer: Producer = state.producer
    event = ev.TranscodeCancel(id=ev.event_id("cancel", video_id, ev.now()), video_id=video_id)
    try:
        produce_event(producer, settings.kafka.topic_jobs, event)
        await asyncio.to_thread(flush_or_raise, producer)
    except Exception as exc:  # noqa: BLE001 - the button says what failed, the log says why
        log.warning("cancel not sent", video_id=video_id, error=f"{type(exc).__name__}: {exc}")
        return _told(public_reason("could not ask for the cancel", exc), 503)
    return _told("Cancel requested.")


@post("/videos/{video_id:str}/reprocess", guards=[requires_uploader])
async def reprocess(
    request: Request[Any, Any, Any], state: State, video_id: FromPath[str]
) -> Response[str]:
    """Run the ladder again from the verified source, with the profile chosen in the form."""
    row = await _visible(state, request, video_id)
    form = await request.form()
    profile = str(form.get("profile") or "")
    try:
        requested = await request_job(state.settings, row, profile, state.producer)
    except HTTPException as exc:
        return _told(str(exc.detail), exc.status_code)
    except Exception as exc:  # noqa: BLE001 - Kafka down: the button says so, the log says why
        log.warning("job not requested", video_id=video_id, error=f"{type(exc).__name__}: {exc}")
        return _told(public_reason("could not request the job", exc), 503)
    return _told(f"Reprocess requested with profile {requested.profile} (job {requested.job_id}).")


@get("/api/videos")
async def api_videos(
    request: Request[Any, Any, Any],
    state: State,
    status: FromQuery[str] = "",
    q: FromQuery[str] = "",
    page: FromQuery[int] = 1,
) -> dict[str, Any]:
    """Videos as JSON (same filters as the page)."""
    async with _session(state) as session:
        listing = await queries.video_page(
            session, status, q.strip(), page, viewer_of(request).owner_scope
        )
    return {
        "total": listing.total,
        "page": listing.page,
        "pages": listing.pages,
        "videos": [_video_json(v) for v in listing.videos],
    }


@get("/api/videos/{video_id:str}")
async def api_video(
    request: Request[Any, Any, Any], state: State, video_id: FromPath[str]
) -> dict[str, Any]:
    """One video as JSON, with its renditions."""
    async with _session(state) as session:
        detail = await queries.video_detail(session, video_id, viewer_of(request).owner_scope)
    if detail is None:
        raise NotFoundException(f"no video {video_id}")
    return {
        **_video_json(detail.video),
        "renditions": [
            {"height": r.height, "width": r.width, "key": r.key, "hls": r.hls}
            for r in detail.renditions
        ],
        "chunks": [
            {"index": c.index, "offset": c.offset, "size": c.size, "sha256": c.sha256}
            for c in detail.chunks
        ],
    }


def _video_json(v: Video) -> dict[str, Any]:
    return {
        "video_id": v.id,
        "filename": display_filename(v.filename),
        "status": v.status,
        "progress": v.progress,
        "error": v.error or None,
        "size": v.size,
        "sha256": v.sha256,
        "probe": v.probe,
    }


@get("/healthz", sync_to_thread=False)
def healthz() -> dict[str, str]:
    """The process is alive."""
    return {"status": "ok"}


@get("/metrics", sync_to_thread=False)
def metrics() -> Response[bytes]:
    """Prometheus exposition of this process."""
    return Response(
        prometheus_client.generate_latest(), media_type=prometheus_client.CONTENT_TYPE_LATEST
    )


@get("/dead-letters", guards=[requires_admin])
async def dead_letter_page(state: State) -> Template:
    """Messages no flow could use, with their errors."""
    async with _session(state) as session:
        letters = await queries.dead_letters(session)
    return Template(template_name="dead_letters.html", context={"letters": letters})


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


@jinja2.pass_context
def _current_viewer(context: jinja2.runtime.Context) -> Viewer | None:
    """The logged-in user for the page header; None on public pages such as the login form."""
    request = context.get("request")
    user = request.scope.get("user") if request is not None else None
    return user if isinstance(user, Viewer) else None


def _add_filters(engine: JinjaTemplateEngine) -> None:
    engine.engine.filters["when"] = _when
    engine.engine.filters["filename"] = display_filename
    engine.engine.globals["current_viewer"] = _current_viewer


def create_app(settings: Settings | None = None) -> Litestar:
    """The portal for ``settings`` (the process's settings by default)."""
    resolved = settings or get_settings()
    hub = NotifyHub(resolved.postgres)
    engine = async_engine(resolved.postgres)
    # one client (HTTP pool) per process for files, probes and uploads; closing it on shutdown
    # only empties the pool, which refills if another app of this process uses it
    storage = storage_client(resolved.storage)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        # one producer (and admin client) per process, not one per click or probe
        producer = app.state.producer = make_producer(resolved.kafka)
        app.state.kafka_admin = make_admin(resolved.kafka, quiet=True)
        await hub.start()
        try:
            yield
        finally:
            await hub.stop()
            await asyncio.to_thread(producer.flush, 10.0)
            close_client(storage)
            # Pooled connections belong to this event loop; left open they outlive it.
            await engine.dispose()

    template_config = TemplateConfig(
        directory=HERE / "templates", engine=JinjaTemplateEngine, engine_callback=_add_filters
    )
    app = Litestar(
        route_handlers=[
            videos,
            video,
            video_file,
            all_events,
            video_events,
            cancel,
            reprocess,
            api_videos,
            api_video,
            api_create_job,
            *DELETION_HANDLERS,
            healthz,
            metrics,
            dead_letter_page,
            login_page,
            login,
            logout,
            readyz,
            UploadApi,
            upload_page,
            operations_page,
            api_operations,
            replay_dead_letter,
            api_replay_dead_letter,
            reprocess_failed,
            tokens_page,
            create_token,
            revoke_token,
            webhooks_router,
            create_static_files_router(path="/static", directories=[HERE / "static"]),
        ],
        # Order matters: the session is loaded before anyone is authenticated, and CSRF and
        # the per-user upload limit need to know who (and how: session or token) is asking.
        middleware=[
            forwarded_middleware(resolved.portal.trusted_proxies),  # who asks, before anything
            NulRefusingMiddleware,
            session_config(resolved).middleware,
            auth_middleware(),
            csrf_middleware(resolved),
            *rate_limit_middleware(),
        ],
        stores={SESSION_STORE: session_store(resolved)},
        before_send=[security_headers(resolved)],
        exception_handlers={
            NotAuthorizedException: send_to_login,
            HTTPException: error_response,
            Exception: error_response,
        },
        template_config=template_config,
        plugins=[HTMXPlugin()],
        request_class=HTMXRequest,
        lifespan=[lifespan],
        state=State(
            {
                "settings": resolved,
                "hub": hub,
                "storage": storage,
                "sessions": async_sessionmaker(engine, expire_on_commit=False),
                "login_throttle": LoginThrottle(),
            }
        ),
    )
    app.state.renders = _renderer(app.state)
    hub.listeners.append(app.state.renders.changed)
    _APP_TEMPLATES["engine"] = template_config.engine_instance
    return app
