"""The Litestar portal, assembled: routes by area, middleware, dependencies, error handlers.

Areas live in their own modules: :mod:`portal.videos` (pages and JSON API), :mod:`portal.live`
(server-sent events), :mod:`portal.files` (a video's objects), :mod:`portal.uploads`,
:mod:`portal.operations`, :mod:`portal.auth` (login, sessions, API tokens, the middleware and
guards), :mod:`portal.health`. Handlers get what they need (settings, a database session,
storage, the producer, templates) from :mod:`portal.deps` by dependency injection; errors
become pages, JSON or an HTMX fragment in one place, :mod:`portal.error_pages`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from litestar import Litestar
from litestar.datastructures import State
from litestar.plugins.htmx import HTMXPlugin, HTMXRequest
from litestar.static_files import create_static_files_router
from sqlalchemy.ext.asyncio import async_sessionmaker

from connectors.db import async_engine
from connectors.kafka import make_admin, make_producer
from connectors.storage import close_client, make_probe_client
from core.settings import Settings, get_settings
from portal.auth.forwarded import forwarded_middleware
from portal.auth.login import LoginPages
from portal.auth.middleware import auth_middleware
from portal.auth.security import (
    NulRefusingMiddleware,
    csrf_middleware,
    rate_limit_middleware,
    security_headers,
)
from portal.auth.sessions import SESSION_STORE, session_config, session_store
from portal.auth.throttle import LoginThrottle
from portal.auth.tokens import TokenPages
from portal.dead_letters import dead_letter_page
from portal.deletion import HANDLERS as DELETION_HANDLERS
from portal.deps import DEPENDENCIES
from portal.error_pages import exception_handlers
from portal.files.download import DownloadController
from portal.files.proxy import video_file
from portal.health import TIMEOUT as PROBE_TIMEOUT
from portal.health import healthz, metrics, readyz
from portal.jobs import api_create_job
from portal.live.hub import NotifyHub
from portal.live.streams import all_events, make_renders, video_events
from portal.operations import (
    api_operations,
    api_replay_dead_letter,
    operations_page,
    replay_dead_letter,
    reprocess_failed,
)
from portal.templating import TemplateRenderer, template_config
from portal.uploads import UploadApi, storage_client, upload_page
from portal.videos.api import VideosApi
from portal.videos.pages import VideoPages
from portal.webhooks import webhooks_router

__all__ = ["create_app"]

STATIC = Path(__file__).parent / "static"


def create_app(settings: Settings | None = None) -> Litestar:
    """The portal for ``settings`` (the process's settings by default)."""
    resolved = settings or get_settings()
    hub = NotifyHub(resolved.postgres)
    engine = async_engine(resolved.postgres)
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    # one client (HTTP pool) per process for files, probes and uploads; closing it on shutdown
    # only empties the pool, which refills if another app of this process uses it
    storage = storage_client(resolved.storage)
    storage_probe = make_probe_client(resolved.storage, PROBE_TIMEOUT)
    templates = template_config()
    renderer = TemplateRenderer(templates)
    renders = make_renders(sessions, renderer)
    hub.listeners.append(renders.changed)

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
            close_client(storage_probe)
            # Pooled connections belong to this event loop; left open they outlive it.
            await engine.dispose()

    return Litestar(
        route_handlers=[
            VideoPages,
            VideosApi,
            video_file,
            DownloadController,
            all_events,
            video_events,
            api_create_job,
            *DELETION_HANDLERS,
            healthz,
            metrics,
            readyz,
            dead_letter_page,
            LoginPages,
            UploadApi,
            upload_page,
            operations_page,
            api_operations,
            replay_dead_letter,
            api_replay_dead_letter,
            reprocess_failed,
            TokenPages,
            webhooks_router,
            create_static_files_router(path="/static", directories=[STATIC]),
        ],
        dependencies=DEPENDENCIES,
        # Order matters: the session is loaded before anyone is authenticated, and CSRF and
        # the per-user upload limit need to know who (and how: session or token) is asking.
        middleware=[
            forwarded_middleware(resolved.portal.trusted_proxies),  # who asks, before anything
            NulRefusingMiddleware,
            session_config(resolved).middleware,
            auth_middleware(sessions),
            csrf_middleware(resolved),
            *rate_limit_middleware(),
        ],
        stores={SESSION_STORE: session_store(resolved)},
        before_send=[security_headers(resolved)],
        exception_handlers=exception_handlers(),
        template_config=templates,
        plugins=[HTMXPlugin()],
        request_class=HTMXRequest,
        lifespan=[lifespan],
        state=State(
            {
                "settings": resolved,
                "hub": hub,
                "storage": storage,
                "storage_probe": storage_probe,
                "sessions": sessions,
                "templates": renderer,
                "renders": renders,
                "login_throttle": LoginThrottle(),
            }
        ),
    )
