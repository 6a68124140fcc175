"""Logging a test client into the portal the way a browser does: login form, CSRF token."""

from __future__ import annotations

import re

from litestar.testing import TestClient

from core.settings import Settings
from portal.auth import Role
from portal.auth.accounts import create_user
from portal.auth.security import CSRF_COOKIE, CSRF_HEADER

__all__ = ["PASSWORD", "csrf_headers", "form_token", "log_in"]

PASSWORD = "correct horse battery staple"


def form_token(html: str) -> str:
    """The CSRF token a page's forms carry."""
    found = re.search(r'name="_csrf_token" value="([^"]+)"', html)
    assert found, "the page has no CSRF token"
    return found.group(1)


def csrf_headers(client: TestClient) -> dict[str, str]:  # type: ignore[type-arg]
    """What HTMX sends with every request of a logged-in page."""
    return {CSRF_HEADER: client.cookies[CSRF_COOKIE]}


def log_in(
    client: TestClient,  # type: ignore[type-arg]
    settings: Settings,
    username: str,
    role: Role = "uploader",
    *,
    create: bool = True,
    password: str = PASSWORD,
) -> None:
    """Create ``username`` (unless it exists) and log ``client`` in through the login form."""
    if create:
        create_user(settings, username, password, role)
    token = form_token(client.get("/login").text)
    response = client.post(
        "/login",
        data={"username": username, "password": password, "_csrf_token": token, "next": "/"},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
