"""Server-side browser sessions: the cookie carries a random id, the data stays on the server.

Server-side (rather than a signed cookie) so that logging out really ends a session; the store
is a directory under ``VIDFLOW_HOME`` so a portal restart does not log everyone out.

Only a session with something in it is stored: Litestar writes one (and sets a cookie) for every
response, an anonymous visitor's empty one included, so anyone could fill the disk with GETs.
Expired sessions are purged when sessions are written (at most every ``PURGE_EVERY`` seconds),
so the store holds what is live, not every session since the first start.
"""

from __future__ import annotations

import secrets
import time
from pathlib import Path
from typing import Any

from litestar.connection import ASGIConnection
from litestar.middleware.session.server_side import (
    ServerSideSessionBackend,
    ServerSideSessionConfig,
)
from litestar.stores.base import Store
from litestar.stores.file import FileStore
from litestar.types import Empty, Message, ScopeSession

from core.settings import Settings

__all__ = ["SESSION_COOKIE", "SESSION_STORE", "rotate_session", "session_config", "session_store"]

SESSION_COOKIE = "vidflow_session"
SESSION_STORE = "sessions"
SESSION_SECONDS = 12 * 3600
PURGE_EVERY = 600.0
_NEW_ID = "vidflow_new_session_id"


class RotatingSessionBackend(ServerSideSessionBackend):
    """Litestar keeps whatever session id the browser presents; at login that would let a
    planted id become an authenticated one (session fixation), so a login asks for a new id."""

    _last_purge = float("-inf")

    def get_session_id(self, connection: ASGIConnection[Any, Any, Any, Any]) -> str:
        fresh = connection.scope.get("state", {}).get(_NEW_ID)
        if isinstance(fresh, str):
            return fresh
        return super().get_session_id(connection)

    async def store_in_message(
        self,
        scope_session: ScopeSession,
        message: Message,
        connection: ASGIConnection[Any, Any, Any, Any],
    ) -> None:
        """Store a session with data; an empty one only ends a session the browser presented
        (its data deleted, its cookie cleared), and a visitor without one gets nothing."""
        if scope_session is Empty or not scope_session:
            presented = connection.cookies.get(self.config.key)
            if presented and presented != "null":
                await super().store_in_message(Empty, message, connection)
            return
        await super().store_in_message(scope_session, message, connection)
        await self._purge_expired(self.config.get_store_from_app(connection.scope["app"]))

    async def _purge_expired(self, store: Store) -> None:
        now = time.monotonic()
        if now - self._last_purge < PURGE_EVERY or not isinstance(store, FileStore):
            return
        self._last_purge = now
        await store.delete_expired()


class RotatingSessionConfig(ServerSideSessionConfig):
    """:class:`ServerSideSessionConfig` whose backend can rotate the id."""

    _backend_class = RotatingSessionBackend


def rotate_session(connection: ASGIConnection[Any, Any, Any, Any]) -> None:
    """Store this response's session under a fresh id (call when the user changes)."""
    connection.scope.setdefault("state", {})[_NEW_ID] = secrets.token_hex(32)


def session_config(settings: Settings) -> RotatingSessionConfig:
    """HttpOnly, SameSite=Lax, Secure when the portal is served over TLS."""
    return RotatingSessionConfig(
        key=SESSION_COOKIE,
        store=SESSION_STORE,
        max_age=SESSION_SECONDS,
        httponly=True,
        samesite="lax",
        secure=settings.portal.tls,
    )


def session_store(settings: Settings) -> FileStore:
    """Where session data lives between requests and restarts."""
    return FileStore(Path(settings.home) / "portal" / "sessions", create_directories=True)
