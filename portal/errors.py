"""The one place where failures become HTTP answers.

Handlers and helpers raise domain exceptions (:class:`NotFound`, :class:`Forbidden`,
:class:`Conflict`, :class:`Unavailable`, :class:`InvalidInput`) or Litestar's HTTP ones;
:func:`exception_handlers` maps them all: 401 to the login form, everything else to
:func:`portal.error_pages.error_response` (an HTML page for browsers, JSON for ``/api/``).
"""

from __future__ import annotations

from litestar.exceptions import HTTPException, NotAuthorizedException
from litestar.types import ExceptionHandlersMap

__all__ = [
    "Conflict",
    "Forbidden",
    "InvalidInput",
    "NotFound",
    "PortalError",
    "Unavailable",
    "exception_handlers",
]


class PortalError(Exception):
    """A failure the portal names: its words are shown (scrubbed when it is a 503)."""

    status_code = 500

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class InvalidInput(PortalError):
    status_code = 400


class Forbidden(PortalError):
    status_code = 403


class NotFound(PortalError):
    """Unknown, or not the caller's to see (the two look the same)."""

    status_code = 404


class Conflict(PortalError):
    status_code = 409


class Unavailable(PortalError):
    """A service the portal needs did not answer."""

    status_code = 503


def exception_handlers() -> ExceptionHandlersMap:
    """Every exception handler of the app."""
    from portal.error_pages import error_response
    from portal.login import send_to_login

    return {
        NotAuthorizedException: send_to_login,
        PortalError: error_response,
        HTTPException: error_response,
        Exception: error_response,
    }
