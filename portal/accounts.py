"""Users and API tokens in PostgreSQL, for the command line and ``vidflow up`` (synchronous).

Each call opens its own short-lived engine and disposes of it: these run once per command, and
a pooled connection left behind would outlive the command's purpose.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from portal.auth import ROLES, Role, hash_password, hash_token, new_token, verify_password
from portal.models import ApiToken, User
from vidflow.settings import Settings

__all__ = ["AccountError", "create_user", "ensure_admin", "issue_token"]


class AccountError(ValueError):
    """A user or token request that cannot be carried out (unknown user, taken name...)."""


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


def issue_token(settings: Settings, username: str, name: str) -> str:
    """A new API token for ``username``; the plain token is returned once and never stored."""
    token = new_token()
    with _session(settings) as session:
        user_id = session.scalar(select(User.id).where(User.username == username))
        if user_id is None:
            raise AccountError(f"no user {username!r}")
        session.add(ApiToken(user_id=user_id, token_sha256=hash_token(token), name=name[:64]))
    return token
