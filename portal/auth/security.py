"""The portal's protective layers: CSRF, rate limits and security headers on every response.

The upload rate limit uses Litestar's :class:`RateLimitConfig` with its in-memory store: the
counts belong to one portal process (a restart forgets them), which is enough to slow runaway
upload clients without any shared state. Password guessing has its own throttle, per address
and per account (:mod:`portal.auth.throttle`), which a fixed window per address cannot be.
Who "the address" is was settled before any of this runs (:mod:`portal.auth.forwarded`).
"""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.config.csrf import CSRFConfig
from litestar.datastructures import MutableScopeHeaders
from litestar.exceptions import ClientException
from litestar.middleware.base import DefineMiddleware
from litestar.middleware.csrf import CSRFMiddleware
from litestar.middleware.rate_limit import DurationUnit, RateLimitConfig, get_remote_address
from litestar.types import ASGIApp, BeforeMessageSendHookHandler, Message, Receive, Scope, Send

from core.settings import Settings
from portal.auth.viewer import Viewer

__all__ = [
    "CSRF_COOKIE",
    "CSRF_HEADER",
    "UPLOAD_PATHS",
    "UPLOAD_RATE",
    "NulRefusingMiddleware",
    "TokenExemptCSRFMiddleware",
    "content_security_policy",
    "csrf_middleware",
    "rate_limit_middleware",
    "security_headers",
]

CSRF_COOKIE = "vidflow_csrf"
CSRF_HEADER = "x-csrftoken"
# Generous: a resumable upload sends a request per part (and a retry per failed part).
UPLOAD_RATE: tuple[DurationUnit, int] = ("minute", 600)
UPLOAD_PATHS = ("/uploads", "/api/uploads")
STATIC_PREFIX = "/static/"


def content_security_policy(settings: Settings) -> str:
    """Same origin only, plus the object store for browser uploads (presigned part PUTs).

    hls.js feeds MediaSource from blob: URLs and may build its demuxer worker from a blob:.
    No 'unsafe-inline' anywhere: every script is a file under /static.
    """
    storage = settings.storage
    store_origin = f"{'https' if storage.secure else 'http'}://{storage.endpoint}"
    return "; ".join(
        [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data: blob:",
            "media-src 'self' blob:",
            "worker-src 'self' blob:",
            f"connect-src 'self' {store_origin}",
            "object-src 'none'",
            "base-uri 'self'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


def security_headers(settings: Settings) -> BeforeMessageSendHookHandler:
    """A ``before_send`` hook: it sees every response, errors and static files included.

    Everything but the static assets is ``Cache-Control: no-store`` (unless the handler said
    otherwise): pages and API answers show one user's data, and a shared or back-button cache
    must not keep them after a logout.
    """
    headers = {
        "content-security-policy": content_security_policy(settings),
        "x-content-type-options": "nosniff",
        "referrer-policy": "same-origin",
        "x-frame-options": "DENY",
        "cross-origin-opener-policy": "same-origin",
    }

    async def add_headers(message: Message, scope: Scope) -> None:
        if message["type"] == "http.response.start":
            present = MutableScopeHeaders.from_message(message)
            for name, value in headers.items():
                if name not in present:
                    present[name] = value
            if not scope.get("path", "").startswith(STATIC_PREFIX) and (
                "cache-control" not in present
            ):
                present["cache-control"] = "no-store"

    return add_headers


class NulRefusingMiddleware:
    """400 for an address with a NUL in its path or query.

    No id, name or search of the portal contains one, and PostgreSQL refuses it in text: left
    to reach a query, ``/videos/a%00b`` or ``/?q=%00`` would be a 500 instead of a client error.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        query = scope.get("query_string", b"").lower()
        if "\x00" in scope.get("path", "") or b"%00" in query or b"\x00" in query:
            raise ClientException("the address contains a NUL character")
        await self.app(scope, receive, send)


class TokenExemptCSRFMiddleware(CSRFMiddleware):
    """Litestar's CSRF check, skipped for requests authenticated by a bearer token.

    CSRF abuses credentials a browser attaches on its own (cookies); a bearer header is never
    attached by a browser cross-site, and such a request is authenticated by the token alone
    (see :class:`portal.auth.AuthMiddleware`), so there is nothing to forge.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("auth") == "token":
            await self.app(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def csrf_middleware(settings: Settings) -> DefineMiddleware:
    """CSRF for every unsafe method; the token reaches pages as ``csrf_token()``.

    Placed after the authentication middleware (not via ``Litestar(csrf_config=...)``, which
    would run it before anyone is known) so token requests can be told apart.
    """
    config = CSRFConfig(
        secret=settings.portal.secret_key.reveal(),
        cookie_name=CSRF_COOKIE,
        header_name=CSRF_HEADER,
        cookie_httponly=True,  # pages carry the token; scripts never need the cookie
        cookie_samesite="lax",
        cookie_secure=settings.portal.tls,
    )
    return DefineMiddleware(TokenExemptCSRFMiddleware, config=config)


def _is_upload(request: Request[Any, Any, Any]) -> bool:
    return request.method != "GET" and request.url.path.startswith(UPLOAD_PATHS)


def _user_or_address(request: Request[Any, Any, Any]) -> str:
    user = request.scope.get("user")
    return f"user:{user.username}" if isinstance(user, Viewer) else get_remote_address(request)


def rate_limit_middleware() -> list[DefineMiddleware]:
    """Upload requests per user (after authentication)."""
    upload = RateLimitConfig(
        rate_limit=UPLOAD_RATE,
        check_throttle_handler=_is_upload,
        identifier_for_request=_user_or_address,
        store="rate_limit_upload",
    )
    return [upload.middleware]
