"""The authentication middleware: who is asking, a session's user or an API token's.

Browsers authenticate with a server-side session (the cookie holds a random id, nothing else);
producers send ``Authorization: Bearer <token>``, of which only the SHA-256 is stored. Either
way a handler sees ``request.user`` as a :class:`~portal.auth.viewer.Viewer`, reloaded from
PostgreSQL on every request so a changed role, a deleted user or a revoked token takes effect
at once. What a viewer may do is for the guards (:mod:`portal.auth.guards`).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult
from litestar.middleware.base import DefineMiddleware
from litestar.types import ASGIApp
from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from portal.auth.credentials import hash_token
from portal.auth.viewer import ROLES, SCOPES, Scope, Viewer
from portal.models import ApiToken, User

__all__ = [
    "PUBLIC_PATHS",
    "SESSION_USER_KEY",
    "AuthMiddleware",
    "auth_middleware",
    "viewer_by_id",
    "viewer_by_token",
]

SESSION_USER_KEY = "uid"
# Probes, scrapers and the login page itself must answer without a session.
PUBLIC_PATHS = ["^/static/", "^/healthz$", "^/readyz$", "^/metrics$", "^/login$"]
# last_used_at is a hint for people deciding which token to revoke: a minute is precise enough
TOUCH_EVERY = timedelta(minutes=1)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _viewer(user: User) -> Viewer:
    role = user.role if user.role in ROLES else "viewer"
    return Viewer(id=user.id, username=user.username, role=role)


async def viewer_by_id(session: AsyncSession, user_id: int) -> Viewer | None:
    """The user behind a session, if it still exists."""
    user = await session.get(User, user_id)
    return None if user is None else _viewer(user)


async def viewer_by_token(session: AsyncSession, token: str, writes: bool) -> Viewer:
    """The user a bearer token acts for, limited to its scope; 401 with the reason otherwise."""
    row = (
        await session.execute(
            select(ApiToken, User)
            .join(User, ApiToken.user_id == User.id)
            .where(ApiToken.token_sha256 == hash_token(token))
        )
    ).one_or_none()
    if row is None:
        raise NotAuthorizedException("unknown API token")
    api_token, user = row
    now = datetime.now(UTC)
    if api_token.revoked_at is not None:
        raise NotAuthorizedException("API token revoked")
    if api_token.expires_at is not None and api_token.expires_at <= now:
        raise NotAuthorizedException("API token expired")
    await _touch(session, api_token, now)
    scope: Scope = api_token.scope if api_token.scope in SCOPES else "read"
    if scope == "read" and writes:
        # Belt and braces: a route that forgot its guard still cannot be written through.
        raise PermissionDeniedException("this API token may only read")
    return msgspec.structs.replace(_viewer(user), scope=scope, writes=writes)


async def _touch(session: AsyncSession, api_token: ApiToken, now: datetime) -> None:
    """Stamp ``last_used_at`` if the last stamp is older than :data:`TOUCH_EVERY`.

    A poller making ten requests a second must not turn into ten writes a second; the
    condition is repeated in the UPDATE so concurrent portal processes write it once too.
    """
    last = api_token.last_used_at
    if last is not None and now - last < TOUCH_EVERY:
        return
    stale = now - TOUCH_EVERY
    await session.execute(
        update(ApiToken)
        .where(ApiToken.id == api_token.id)
        .where(or_(ApiToken.last_used_at.is_(None), ApiToken.last_used_at <= stale))
        .values(last_used_at=now)
    )
    await session.commit()


class AuthMiddleware(AbstractAuthenticationMiddleware):
    """A bearer token if the request carries one (and then only that), else the session.

    Middleware runs before dependency injection, so the app hands it the session maker when it
    is defined (:func:`auth_middleware`) instead of the middleware reading the app's state.
    """

    def __init__(
        self, app: ASGIApp, sessions: async_sessionmaker[AsyncSession], exclude: list[str]
    ) -> None:
        super().__init__(app, exclude=exclude)
        self._sessions = sessions

    async def authenticate_request(
        self, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> AuthenticationResult:
        maker = self._sessions
        scheme, _, credential = connection.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer":
            # No fallback to the cookie: a request that names a token stands or falls with it,
            # which is what lets the CSRF check skip token requests.
            writes = connection.scope.get("method", "GET") not in SAFE_METHODS
            async with maker() as session:
                viewer = await viewer_by_token(session, credential.strip(), writes)
            return AuthenticationResult(user=viewer, auth="token")
        user_id = connection.session.get(SESSION_USER_KEY) if connection.session else None
        if isinstance(user_id, int):
            async with maker() as session:
                viewer_or_none = await viewer_by_id(session, user_id)
            if viewer_or_none is not None:
                return AuthenticationResult(user=viewer_or_none, auth="session")
        raise NotAuthorizedException("log in first")


def auth_middleware(sessions: async_sessionmaker[AsyncSession]) -> DefineMiddleware:
    """The authentication middleware, reading users and tokens through ``sessions``, with the
    public paths left open."""
    return DefineMiddleware(AuthMiddleware, sessions=sessions, exclude=PUBLIC_PATHS)
