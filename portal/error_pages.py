"""Errors answered in one place: an HTML page for a browser, JSON for the API.

A person who follows a dead link, lacks a role or hits a limit gets a page of the portal (with
its header, so they can go on) saying what happened in a sentence; a program calling ``/api/``
gets the JSON it parses; an HTMX action (a button of a page) gets the ``_action_result.html``
fragment its successes come in, so htmx shows a sentence, not a page inside the page. None ever
sees a traceback or an exception's text for a failure the portal did not expect (a 500): that
detail goes to the log, with the request path.

401 is not here: :func:`portal.auth.login.send_to_login` sends a browser to the login form. Which
exception goes where is decided in :func:`exception_handlers`.
"""

from __future__ import annotations

from typing import Any

from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, NotAuthorizedException
from litestar.response import Template
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR, HTTP_503_SERVICE_UNAVAILABLE
from litestar.types import ExceptionHandlersMap

from core.errors import public_reason
from core.logs import get_logger
from portal.errors import PortalError
from portal.templating import action_result

__all__ = ["TITLES", "error_response", "exception_handlers", "wants_json"]

log = get_logger("vidflow.portal.errors")

TITLES = {
    400: ("Bad request", "The request could not be understood."),
    403: ("Not allowed", "Your account may not do this."),
    404: ("Not found", "There is nothing here, or it is not yours to see."),
    405: ("Not allowed", "This address does not take that kind of request."),
    409: ("Conflict", "This cannot be done in the current state."),
    413: ("Too large", "That is more than the portal accepts."),
    429: ("Too many requests", "Slow down a little and try again shortly."),
    500: ("Something went wrong", "The portal could not answer. The failure is logged."),
    503: ("Unavailable", "A service the portal needs did not answer. Try again shortly."),
}
MAX_DETAIL = 300


def wants_json(request: Request[Any, Any, Any]) -> bool:
    """The API, or a program that asks for JSON and not for a page."""
    if request.url.path.startswith("/api/"):
        return True
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "text/html" not in accept


def _status_and_detail(exc: Exception) -> tuple[int, str, Any, dict[str, str]]:
    """Status, the words a user may see, extra data (4xx only), headers.

    A client error (4xx) says what was wrong with the request in the portal's own words. A 503
    says what did not answer, scrubbed by :func:`public_reason`. Any other failure (a 500, an
    exception nobody turned into HTTP) says only that something failed.
    """
    if isinstance(exc, PortalError):
        status, detail, extra, headers = exc.status_code, exc.detail, None, {}
    elif isinstance(exc, HTTPException):
        status, detail, headers = exc.status_code, str(exc.detail), dict(exc.headers or {})
        extra = exc.extra
    else:
        return HTTP_500_INTERNAL_SERVER_ERROR, "", None, {}
    if status < 500:
        return status, detail[:MAX_DETAIL], extra, headers
    if status == HTTP_503_SERVICE_UNAVAILABLE:
        return status, public_reason(detail), None, headers
    return status, "", None, headers


def error_response(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """The exception handler for every error but 401 (see the module docstring)."""
    status, detail, extra, headers = _status_and_detail(exc)
    title, text = TITLES.get(status, ("Error", "The request could not be answered."))
    if status >= 500:
        log.error(
            "request failed",
            path=request.url.path,
            method=request.method,
            status=status,
            error=f"{type(exc).__name__}: {exc}",
            exc_info=exc,
        )
    shown = detail or title
    if wants_json(request):
        body: dict[str, Any] = {"status_code": status, "detail": shown}
        if extra:
            body["extra"] = extra
        return Response(body, status_code=status, media_type=MediaType.JSON, headers=headers)
    if request.headers.get("hx-request") == "true":
        return action_result(shown, status, headers)
    return Template(
        template_name="error.html",
        context={"status": status, "title": title, "text": text, "detail": shown},
        status_code=status,
        headers=headers,
        media_type=MediaType.HTML,
    )


def exception_handlers() -> ExceptionHandlersMap:
    """Every exception handler of the app: 401 to the login form, everything else a page (or
    JSON for the API) through :func:`error_response`."""
    from portal.auth.login import send_to_login

    return {
        NotAuthorizedException: send_to_login,
        PortalError: error_response,
        HTTPException: error_response,
        Exception: error_response,
    }
