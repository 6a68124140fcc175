"""Who is asking: password and token hashing, the authentication middleware and the role guards.

Browsers authenticate with a server-side session (the cookie holds a random id, nothing else);
producers send ``Authorization: Bearer <token>``, of which only the SHA-256 is stored. Either
way a handler sees ``request.user`` as a :class:`Viewer`, reloaded from PostgreSQL on every
request so a changed role, a deleted user or a revoked token takes effect at once.

A token carries a scope (read ⊂ upload ⊂ admin) and a request made with it may do what both
the scope and its user's role allow: the guards and the owner filter ask the :class:`Viewer`,
which knows both, so no handler has to think about tokens.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any, Literal, get_args

import msgspec
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult
from litestar.middleware.base import DefineMiddleware
from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from portal.models import ApiToken, User

__all__ = [
    "PUBLIC_PATHS",
    "ROLES",
    "SCOPES",
    "SESSION_USER_KEY",
    "AuthMiddleware",
    "Role",
    "Scope",
    "Viewer",
    "auth_middleware",
    "hash_password",
    "hash_token",
    "may_hold",
    "needs_rehash",
    "new_token",
    "requires_admin",
    "requires_session",
    "requires_uploader",
    "verify_password",
    "viewer_of",
    "widest_scope",
]

Role = Literal["admin", "uploader", "viewer"]
ROLES: tuple[Role, ...] = get_args(Role)
Scope = Literal["read", "upload", "admin"]
SCOPES: tuple[Scope, ...] = get_args(Scope)
# Roles and scopes form one ladder: read ⊂ upload ⊂ admin, viewer ⊂ uploader ⊂ admin.
_ROLE_RANK: dict[str, int] = {"viewer": 0, "uploader": 1, "admin": 2}
_SCOPE_RANK: dict[str, int] = {"read": 0, "upload": 1, "admin": 2}
SESSION_USER_KEY = "uid"
# Probes, scrapers and the login page itself must answer without a session.
PUBLIC_PATHS = ["^/static/", "^/healthz$", "^/readyz$", "^/metrics$", "^/login$"]
TOKEN_PREFIX = "vf_"
# last_used_at is a hint for people deciding which token to revoke: a minute is precise enough
TOUCH_EVERY = timedelta(minutes=1)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class Viewer(msgspec.Struct, frozen=True):
    """The authenticated user of a request (``request.user``).

    ``scope`` is the API token's (None for a browser session: the role alone decides).
    ``writes`` says the request changes something (not GET/HEAD/OPTIONS): a token below the
    admin scope still reads everything its admin user may see, but acts only on its own.
    """

    id: int
    username: str
    role: Role
    scope: Scope | None = None
    writes: bool = False

    @property
    def rank(self) -> int:
        """What this request may do, on the ladder read/viewer 0, upload/uploader 1, admin 2."""
        role = _ROLE_RANK.get(self.role, 0)
        return role if self.scope is None else min(role, _SCOPE_RANK.get(self.scope, 0))

    @property
    def is_admin(self) -> bool:
        """Operations on everyone's data: the admin role, and the admin scope for a token."""
        return self.rank >= _ROLE_RANK["admin"]

    @property
    def can_upload(self) -> bool:
        """Uploading, cancelling and reprocessing start work; viewers and read tokens watch."""
        return self.rank >= _ROLE_RANK["uploader"]

    @property
    def owner_scope(self) -> str | None:
        """The owner a query must filter on; None means every owner (admins)."""
        everyone = self.role == "admin" and (self.is_admin or not self.writes)
        return None if everyone else self.username

    def sees(self, owner: str) -> bool:
        """Whether a video owned by ``owner`` exists as far as this viewer can tell."""
        return self.owner_scope is None or owner == self.username


def widest_scope(role: str) -> Scope:
    """The widest scope a user of ``role`` may hold: what the role itself allows."""
    rank = _ROLE_RANK.get(role, 0)
    return next(scope for scope in SCOPES if _SCOPE_RANK[scope] == rank)


def may_hold(role: str, scope: str) -> bool:
    """Whether a user of ``role`` may be issued a token of ``scope`` (never above the role)."""
    return scope in _SCOPE_RANK and _SCOPE_RANK[scope] <= _ROLE_RANK.get(role, 0)


@cache
def _hasher() -> PasswordHasher:
    return PasswordHasher()


def hash_password(password: str) -> str:
    """An argon2id hash (salt and parameters included) of ``password``."""
    return _hasher().hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """Whether ``password`` matches; a malformed stored hash is a mismatch, not a crash."""
    try:
        return _hasher().verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    """Whether the hash was made with weaker parameters than today's defaults."""
    return _hasher().check_needs_rehash(password_hash)


@cache
def dummy_hash() -> str:
    """A hash to verify against when the user does not exist, so timing does not tell."""
    return hash_password(secrets.token_urlsafe(16))


def new_token() -> str:
    """A fresh API token (shown once; only :func:`hash_token` of it is stored)."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """SHA-256 hex of a token: tokens are random and long, so no slow hash is needed."""
    return hashlib.sha256(token.encode()).hexdigest()


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
    """A bearer token if the request carries one (and then only that), else the session."""

    async def authenticate_request(
        self, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> AuthenticationResult:
        maker: async_sessionmaker[AsyncSession] = connection.app.state.sessions
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


def auth_middleware() -> DefineMiddleware:
    """The authentication middleware with the public paths left open."""
    return DefineMiddleware(AuthMiddleware, exclude=PUBLIC_PATHS)


def viewer_of(connection: ASGIConnection[Any, Any, Any, Any]) -> Viewer:
    """``connection.user``, typed."""
    user = connection.user
    if not isinstance(user, Viewer):
        raise NotAuthorizedException("log in first")
    return user


def requires_uploader(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Guard: uploading, cancelling and reprocessing need the uploader or admin role (and an
    upload- or admin-scoped token)."""
    if not viewer_of(connection).can_upload:
        raise PermissionDeniedException("this needs the uploader or admin role")


def requires_admin(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Guard: operations on everyone's data need the admin role (and an admin-scoped token)."""
    if not viewer_of(connection).is_admin:
        raise PermissionDeniedException("this needs the admin role")


def requires_session(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Guard: tokens are managed by a person signed in, never with a token (a leaked token must
    not be able to mint a longer-lived one or revoke the others)."""
    viewer_of(connection)
    if connection.scope.get("auth") != "session":
        raise PermissionDeniedException("API tokens are managed from a signed-in session")
