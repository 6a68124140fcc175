"""Domain exceptions of the portal (portal.errors) become HTTP answers in one place
(portal.error_pages.exception_handlers)."""

from __future__ import annotations

import pytest
from litestar import Litestar, get
from litestar.testing import TestClient

from portal.error_pages import exception_handlers
from portal.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    PortalError,
    Unavailable,
)


def _client(exc: PortalError) -> TestClient[Litestar]:
    @get("/api/thing", sync_to_thread=False)
    def thing() -> str:
        raise exc

    return TestClient(Litestar(route_handlers=[thing], exception_handlers=exception_handlers()))


@pytest.mark.parametrize(
    ("exc", "status"),
    [
        (NotFound("no video v1"), 404),
        (Forbidden("uploaders only"), 403),
        (Conflict("the upload is already complete"), 409),
        (InvalidInput("unknown profile"), 400),
    ],
)
def test_client_errors_keep_their_words(exc: PortalError, status: int) -> None:
    with _client(exc) as client:
        answer = client.get("/api/thing")
    assert answer.status_code == status
    assert answer.json() == {"status_code": status, "detail": str(exc)}


def test_unavailable_is_a_scrubbed_503() -> None:
    with _client(Unavailable("store at http://10.0.0.5:9000/x?X-Amz-Signature=abc refused")) as c:
        answer = c.get("/api/thing")
    assert answer.status_code == 503
    detail = answer.json()["detail"]
    assert "10.0.0.5" not in detail and "Signature" not in detail and "refused" in detail
