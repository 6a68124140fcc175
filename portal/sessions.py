"""Server-side browser sessions: the cookie carries a random id, the data stays on the server.

Server-side (rather than a signed cookie) so that logging out really ends a session; the store
is a directory under ``VIDFLOW_HOME`` so a portal restart does not log everyone out.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

from litestar.connection import ASGIConnection
from litestar.middleware.session.server_side import (
    ServerSideSessionBackend,
    ServerSideSessionConfig,
)
from litestar.stores.file import FileStore

from vidflow.settings import Settings

__all__ = ["SESSION_COOKIE", "SESSION_STORE", "rotate_session", "session_config", "session_store"]

SESSION_COOKIE = "vidflow_session"
SESSION_STORE = "sessions"
SESSION_SECONDS = 12 * 3600
_NEW_ID = "vidflow_new_session_id"


class RotatingSessionBackend(ServerSideSessionBackend):
    """Litestar keeps whatever session id the browser presents; at login that would let a
    planted id become an authenticated one (session fixation), so a login asks for a new id."""

    def get_session_id(self, connection: ASGIConnection[Any, Any, Any, Any]) -> str:
        fresh = connection.scope.get("state", {}).get(_NEW_ID)
        if isinstance(fresh, str):
            return fresh
        return super().get_session_id(connection)


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
