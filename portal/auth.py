"""Who is asking: password and token hashing, the authentication middleware and the role guards.

Browsers authenticate with a server-side session (the cookie holds a random id, nothing else);
producers send ``Authorization: Bearer <token>``, of which only the SHA-256 is stored. Either
way a handler sees ``request.user`` as a :class:`Viewer`, reloaded from PostgreSQL on every
request so a changed role or a deleted user takes effect at once, not when a cookie expires.
"""

from __future__ import annotations

import hashlib
import secrets
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
from sqlalchemy import select
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


class Viewer(msgspec.Struct, frozen=True):
    """The authenticated user of a request (``request.user``)."""

    id: int
    username: str
    role: Role

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def can_upload(self) -> bool:
        """Uploading, cancelling and reprocessing start work; viewers only watch."""
        return self.role in ("admin", "uploader")

    @property
    def owner_scope(self) -> str | None:
        """The owner a query must filter on; None means every owner (admins)."""
        return None if self.is_admin else self.username

    def sees(self, owner: str) -> bool:
        """Whether a video owned by ``owner`` exists as far as this viewer can tell."""
        return self.is_admin or owner == self.username


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


async def viewer_by_token(session: AsyncSession, token: str) -> Viewer | None:
    """The user a bearer token belongs to, if the token is known."""
    row = await session.execute(
        select(User)
        .join(ApiToken, ApiToken.user_id == User.id)
        .where(ApiToken.token_sha256 == hash_token(token))
    )
    user = row.scalar_one_or_none()
    return None if user is None else _viewer(user)


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
            async with maker() as session:
                viewer = await viewer_by_token(session, credential.strip())
            if viewer is None:
                raise NotAuthorizedException("unknown API token")
            return AuthenticationResult(user=viewer, auth="token")
        user_id = connection.session.get(SESSION_USER_KEY) if connection.session else None
        if isinstance(user_id, int):
            async with maker() as session:
                viewer = await viewer_by_id(session, user_id)
            if viewer is not None:
                return AuthenticationResult(user=viewer, auth="session")
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
    """Guard: uploading, cancelling and reprocessing need the uploader or admin role."""
    if not viewer_of(connection).can_upload:
        raise PermissionDeniedException("this needs the uploader or admin role")


def requires_admin(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Guard: operations on everyone's data need the admin role."""
    if not viewer_of(connection).is_admin:
        raise PermissionDeniedException("this needs the admin role")
