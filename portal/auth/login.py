"""Logging in and out, and sending a browser without a session to the login page."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import quote, urlsplit

import msgspec
from litestar import Controller, MediaType, Request, Response, get, post
from litestar.enums import RequestEncodingType
from litestar.exceptions import NotAuthorizedException
from litestar.params import Body, FromQuery
from litestar.response import Redirect, Template
from litestar.status_codes import (
    HTTP_303_SEE_OTHER,
    HTTP_401_UNAUTHORIZED,
    HTTP_429_TOO_MANY_REQUESTS,
)
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from portal.auth.credentials import dummy_hash, hash_password, needs_rehash, verify_password
from portal.auth.middleware import SESSION_USER_KEY
from portal.auth.sessions import rotate_session
from portal.auth.throttle import Refusal
from portal.deps import Sessions, Throttle
from portal.models import User

__all__ = ["LoginForm", "LoginPages", "safe_next", "send_to_login"]


class LoginForm(msgspec.Struct):
    """The login form's fields (bounded: each attempt's name is kept by the throttle a while)."""

    username: Annotated[str, msgspec.Meta(max_length=256)]
    password: Annotated[str, msgspec.Meta(max_length=1024)]
    next: Annotated[str, msgspec.Meta(max_length=2048)] = "/"


def safe_next(target: str) -> str:
    """Only a path on this site: ``//evil.example`` or ``https://...`` would be an open redirect."""
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


async def _check_password(
    sessions: async_sessionmaker[AsyncSession], username: str, password: str
) -> int | None:
    """The user's id if the password matches; argon2 runs off the event loop.

    A name PostgreSQL cannot hold (a NUL) names nobody: checked like an unknown one.
    """
    if "\x00" in username:
        await asyncio.to_thread(verify_password, dummy_hash(), password)
        return None
    async with sessions() as session, session.begin():
        user = await session.scalar(select(User).where(User.username == username))
        stored = user.password_hash if user is not None else dummy_hash()
        ok = await asyncio.to_thread(verify_password, stored, password)
        if user is None or not ok:
            return None
        if needs_rehash(user.password_hash):
            user.password_hash = await asyncio.to_thread(hash_password, password)
        return user.id


def _form_again(
    data: LoginForm, error: str, status_code: int, headers: dict[str, str] | None = None
) -> Template:
    """The login form with ``error`` above the button and the username kept."""
    return Template(
        template_name="login.html",
        context={"next": safe_next(data.next), "error": error, "username": data.username},
        status_code=status_code,
        headers=headers,
    )


def _refused(data: LoginForm, refusal: Refusal) -> Template:
    """429 in words a person reads, with ``Retry-After`` for programs."""
    at = datetime.fromtimestamp(refusal.at, UTC).strftime("%H:%M:%S UTC")
    wait = refusal.retry_after
    text = (
        "Too many failed logins from here or for this account. "
        f"Please try again in {wait} second{'s' if wait != 1 else ''} (after {at})."
    )
    return _form_again(data, text, HTTP_429_TOO_MANY_REQUESTS, {"Retry-After": str(wait)})


class LoginPages(Controller):
    """The login form, logging in (throttled) and logging out: pages, not part of the API."""

    include_in_schema = False

    @get("/login")
    async def login_page(self, next: FromQuery[str] = "/") -> Template:
        """The login form."""
        return Template(
            template_name="login.html",
            context={"next": safe_next(next), "error": "", "username": ""},
        )

    @post("/login", status_code=HTTP_303_SEE_OTHER)
    async def login(
        self,
        request: Request[Any, Any, Any],
        sessions: Sessions,
        login_throttle: Throttle,
        data: Annotated[LoginForm, Body(media_type=RequestEncodingType.URL_ENCODED)],
    ) -> Response[Any]:
        """Start a session (under a fresh id) and go where the user was heading.

        Attempts go through the throttle first (per client address and per account): a refused
        one gets the form back with when to try again, and its password is not checked.
        """
        throttle = login_throttle
        address = request.client.host if request.client else "unknown"
        attempt = throttle.begin(address, data.username)
        if isinstance(attempt, Refusal):
            return _refused(data, attempt)
        user_id = await _check_password(sessions, data.username, data.password)
        if user_id is None:
            return _form_again(data, "Wrong username or password.", HTTP_401_UNAUTHORIZED)
        throttle.succeeded(attempt)
        rotate_session(request)
        request.set_session({SESSION_USER_KEY: user_id})
        return Redirect(safe_next(data.next), status_code=HTTP_303_SEE_OTHER)

    @post("/logout", status_code=HTTP_303_SEE_OTHER)
    async def logout(self, request: Request[Any, Any, Any]) -> Redirect:
        """End the session (its server-side data is deleted)."""
        request.clear_session()
        return Redirect("/login", status_code=HTTP_303_SEE_OTHER)


def _wants_page(request: Request[Any, Any, Any]) -> bool:
    """A browser navigating (not a script, an API client or an event stream)."""
    path = request.url.path
    return (
        request.method == "GET"
        and not path.startswith("/api/")
        and "authorization" not in request.headers
        and "text/html" in request.headers.get("accept", "")
    )


def send_to_login(request: Request[Any, Any, Any], exc: NotAuthorizedException) -> Response[Any]:
    """Exception handler for 401: a browser goes to the login page, anyone else gets 401."""
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if request.headers.get("hx-request") == "true":
        # Come back to the page, not to the fragment it was fetching.
        page = urlsplit(request.headers.get("hx-current-url", "/"))
        target = page.path + (f"?{page.query}" if page.query else "")
    login_url = f"/login?next={quote(safe_next(target), safe='')}"
    if request.headers.get("hx-request") == "true":
        # HTMX would swap a redirect's body into the page; it follows HX-Redirect instead.
        return Response("", status_code=HTTP_401_UNAUTHORIZED, headers={"HX-Redirect": login_url})
    if _wants_page(request):
        return Redirect(login_url, status_code=HTTP_303_SEE_OTHER)
    return Response(
        {"status_code": HTTP_401_UNAUTHORIZED, "detail": exc.detail},
        status_code=HTTP_401_UNAUTHORIZED,
        media_type=MediaType.JSON,
        headers={"WWW-Authenticate": 'Bearer realm="vidflow"'},
    )
