"""The one place where failures become HTTP answers.

Handlers and helpers raise domain exceptions (:class:`NotFound`, :class:`Forbidden`,
:class:`Conflict`, :class:`Unavailable`, :class:`InvalidInput`) or Litestar's HTTP ones;
``portal.error_pages.exception_handlers`` maps them all: 401 to the login form, everything else to
:func:`portal.error_pages.error_response` (an HTML page for browsers, JSON for ``/api/``).
"""

from __future__ import annotations

__all__ = [
    "Conflict",
    "Forbidden",
    "InvalidInput",
    "NotFound",
    "PortalError",
    "Unavailable",
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
