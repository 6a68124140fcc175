"""Users and API tokens in PostgreSQL, for the command line and ``vidflow up`` (synchronous).

Each call opens its own short-lived engine and disposes of it: these run once per command, and
a pooled connection left behind would outlive the command's purpose. The rules a token must
follow (its scope, its expiry) live here too, so the portal's page applies the same ones.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta

import msgspec
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from core.settings import Settings
from portal.auth.credentials import hash_password, hash_token, new_token, verify_password
from portal.auth.viewer import ROLES, SCOPES, Role, Scope, may_hold, widest_scope
from portal.models import ApiToken, User

__all__ = [
    "AccountError",
    "TokenInfo",
    "check_token_request",
    "create_user",
    "ensure_admin",
    "issue_token",
    "list_tokens",
    "parse_expiry",
    "revoke_token",
    "token_info",
]

MAX_TOKEN_DAYS = 3650
_RELATIVE = re.compile(r"^(\d{1,5})([dh])$")


class AccountError(ValueError):
    """A user or token request that cannot be carried out (unknown user, taken name...)."""


class TokenInfo(msgspec.Struct, frozen=True):
    """What may be shown of a token: everything but the token (which is not kept anyway)."""

    id: int
    username: str
    name: str
    scope: str
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None

    def state(self, now: datetime | None = None) -> str:
        """``revoked``, ``expired`` or ``active``."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= (now or datetime.now(UTC)):
            return "expired"
        return "active"


def token_info(token: ApiToken, username: str) -> TokenInfo:
    """The showable part of a stored token."""
    return TokenInfo(
        id=token.id,
        username=username,
        name=token.name,
        scope=token.scope,
        created_at=token.created_at,
        expires_at=token.expires_at,
        last_used_at=token.last_used_at,
        revoked_at=token.revoked_at,
    )


@contextmanager
def _session(settings: Settings) -> Iterator[Session]:
    engine = create_engine(settings.postgres.url)
    try:
        with Session(engine) as session, session.begin():
            yield session
    finally:
        engine.dispose()


def _check(username: str, role: str) -> None:
    if not username or len(username) > 64 or not username.isprintable() or " " in username:
        raise AccountError("a username is 1 to 64 printable characters without spaces")
    if role not in ROLES:
        raise AccountError(f"role must be one of {', '.join(ROLES)}")


def create_user(settings: Settings, username: str, password: str, role: Role) -> int:
    """A new user with an argon2 hash of ``password``; returns its id."""
    _check(username, role)
    if len(password) < 8:
        raise AccountError("a password has at least 8 characters")
    with _session(settings) as session:
        if session.scalar(select(User.id).where(User.username == username)) is not None:
            raise AccountError(f"user {username!r} already exists")
        user = User(username=username, password_hash=hash_password(password), role=role)
        session.add(user)
        session.flush()
        return user.id


def ensure_admin(settings: Settings) -> bool:
    """Create the settings' admin user if missing; True if the settings' password logs in.

    An existing admin keeps its password (someone may have changed it on purpose); the caller
    only learns whether the configured one still works.
    """
    username = settings.portal.admin_user
    password = settings.portal.admin_password.reveal()
    with _session(settings) as session:
        user = session.scalar(select(User).where(User.username == username))
        if user is None:
            _check(username, "admin")
            session.add(
                User(username=username, password_hash=hash_password(password), role="admin")
            )
            return True
        return user.role == "admin" and verify_password(user.password_hash, password)


def parse_expiry(text: str, now: datetime | None = None) -> datetime | None:
    """When a token asked to expire at ``text`` expires: ``30d`` or ``12h`` from now, or a date
    (``2026-12-31``: the start of that day, UTC); empty means never."""
    text = text.strip()
    if not text:
        return None
    start = now or datetime.now(UTC)
    relative = _RELATIVE.match(text)
    if relative:
        amount, unit = int(relative.group(1)), relative.group(2)
        delta = timedelta(days=amount) if unit == "d" else timedelta(hours=amount)
        expires = start + delta
    else:
        try:
            day = date.fromisoformat(text)
        except ValueError:
            raise AccountError("an expiry is like 30d, 12h or 2026-12-31") from None
        expires = datetime(day.year, day.month, day.day, tzinfo=UTC)
    if expires <= start:
        raise AccountError("an expiry must lie in the future")
    if expires - start > timedelta(days=MAX_TOKEN_DAYS):
        raise AccountError(f"an expiry lies at most {MAX_TOKEN_DAYS} days ahead")
    return expires


def check_token_request(role: str, name: str, scope: str) -> Scope:
    """``scope`` if a user with ``role`` may hold a token of it named ``name``."""
    if not name.strip() or len(name) > 64 or not name.isprintable():
        raise AccountError("a token name is 1 to 64 printable characters")
    if scope not in SCOPES:
        raise AccountError(f"scope must be one of {', '.join(SCOPES)}")
    if not may_hold(role, scope):
        raise AccountError(f"a {role} cannot hold a token of scope {scope}")
    chosen: Scope = scope  # narrowed by the SCOPES check above
    return chosen


def issue_token(
    settings: Settings,
    username: str,
    name: str,
    scope: str | None = None,
    expires_at: datetime | None = None,
) -> str:
    """A new API token for ``username``; the plain token is returned once and never stored.

    Without ``scope`` the token gets the widest scope the user's role allows (what every token
    could do before scopes existed).
    """
    token = new_token()
    with _session(settings) as session:
        user = session.scalar(select(User).where(User.username == username))
        if user is None:
            raise AccountError(f"no user {username!r}")
        chosen = check_token_request(user.role, name, scope or widest_scope(user.role))
        session.add(
            ApiToken(
                user_id=user.id,
                token_sha256=hash_token(token),
                name=name,
                scope=chosen,
                expires_at=expires_at,
            )
        )
    return token


def list_tokens(settings: Settings, username: str) -> list[TokenInfo]:
    """Every token of ``username``, oldest first (revoked and expired ones included)."""
    with _session(settings) as session:
        user_id = session.scalar(select(User.id).where(User.username == username))
        if user_id is None:
            raise AccountError(f"no user {username!r}")
        rows = session.scalars(
            select(ApiToken).where(ApiToken.user_id == user_id).order_by(ApiToken.id)
        )
        return [token_info(t, username) for t in rows]


def revoke_token(settings: Settings, username: str, which: str) -> tuple[TokenInfo, bool]:
    """Revoke ``username``'s token with id (or else name) ``which``; True if it was live until now.

    A name shared by several live tokens is refused: the caller picks one by id.
    """
    with _session(settings) as session:
        user_id = session.scalar(select(User.id).where(User.username == username))
        if user_id is None:
            raise AccountError(f"no user {username!r}")
        mine = select(ApiToken).where(ApiToken.user_id == user_id)
        if which.isdigit():
            found = list(session.scalars(mine.where(ApiToken.id == int(which))))
        else:
            named = list(session.scalars(mine.where(ApiToken.name == which)))
            live = [t for t in named if t.revoked_at is None]
            found = live or named[-1:]
        if not found:
            raise AccountError(f"{username} has no token {which!r}")
        if len(found) > 1:
            ids = ", ".join(str(t.id) for t in found)
            raise AccountError(f"several live tokens are named {which!r} (ids {ids}): pick one id")
        token = found[0]
        newly = token.revoked_at is None
        if newly:
            token.revoked_at = datetime.now(UTC)
            session.flush()
        return token_info(token, username), newly
