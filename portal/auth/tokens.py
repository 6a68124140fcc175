"""The API tokens page: a signed-in user lists, creates and revokes their tokens (admins: anyone's).

One handler per action answers an HTMX request with the ``_tokens.html`` section and a plain
form post with the whole page. A new token is in exactly one response, the one that created it:
only its SHA-256 is kept, so no later page can show it again.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, get, post
from litestar.enums import RequestEncodingType
from litestar.exceptions import NotFoundException, PermissionDeniedException
from litestar.params import Body, FromPath
from litestar.plugins.htmx import HTMXRequest, HTMXTemplate
from litestar.response import Template
from litestar.status_codes import HTTP_200_OK, HTTP_400_BAD_REQUEST
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.errors import public_reason
from core.logs import get_logger
from portal.auth.accounts import (
    AccountError,
    TokenInfo,
    check_token_request,
    parse_expiry,
    token_info,
)
from portal.auth.credentials import hash_token, new_token
from portal.auth.guards import requires_session, viewer_of
from portal.auth.viewer import SCOPES, Viewer, may_hold
from portal.deps import Sessions
from portal.models import ApiToken, User

__all__ = ["TokenForm", "TokenPages"]

log = get_logger("vidflow.portal.tokens")

SCOPE_HELP = {
    "read": "see videos and their progress",
    "upload": "read, upload, cancel and reprocess your own videos",
    "admin": "everything your account may do",
}


class TokenForm(msgspec.Struct):
    """The create form's fields (``_csrf_token`` is the CSRF middleware's)."""

    name: str = ""
    scope: str = "read"
    expires: str = ""


async def _listing(sessions: async_sessionmaker[AsyncSession], viewer: Viewer) -> list[TokenInfo]:
    """The viewer's tokens, newest first; an admin's page lists everyone's."""
    query = select(ApiToken, User.username).join(User, ApiToken.user_id == User.id)
    if not viewer.is_admin:
        query = query.where(ApiToken.user_id == viewer.id)
    async with sessions() as session:
        rows = await session.execute(query.order_by(ApiToken.id.desc()))
        return [token_info(token, username) for token, username in rows]


def _utc(moment: datetime | None, empty: str = "never") -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if moment else empty


async def _answer(
    request: HTMXRequest,
    sessions: Sessions,
    status_code: int = HTTP_200_OK,
    **shown: Any,
) -> Template:
    """The section (HTMX) or the page (a plain form post or a visit) with the current tokens."""
    viewer = viewer_of(request)
    context = {
        "tokens": await _listing(sessions, viewer),
        "everyone": viewer.is_admin,
        "scopes": [s for s in SCOPES if may_hold(viewer.role, s)],
        "scope_help": SCOPE_HELP,
        "utc": _utc,
        "now": datetime.now(UTC),
        "created": None,
        "plain_token": "",
        "error": "",
        "form": TokenForm(),
        **shown,
    }
    # the one answer holding a new token must not linger in a browser or proxy cache
    headers = {"Cache-Control": "no-store"} if context["plain_token"] else None
    if request.htmx:
        # htmx leaves an error response unswapped, so a form mistake is shown with a 200
        return HTMXTemplate(template_name="_tokens.html", context=context, headers=headers)
    return Template(
        template_name="tokens.html", context=context, status_code=status_code, headers=headers
    )


class TokenPages(Controller):
    """``/tokens``: a person signed in manages their tokens, never a token itself (a leaked
    token must not mint a longer-lived one or revoke the others)."""

    path = "/tokens"
    guards = [requires_session]  # noqa: RUF012 - Litestar's declared attribute
    include_in_schema = False

    @get("/")
    async def tokens_page(self, request: HTMXRequest, sessions: Sessions) -> Template:
        """The signed-in user's API tokens (everyone's for an admin) and a form for a new one."""
        return await _answer(request, sessions)

    @post("/", status_code=HTTP_200_OK)
    async def create_token(
        self,
        request: HTMXRequest,
        sessions: Sessions,
        data: Annotated[TokenForm, Body(media_type=RequestEncodingType.URL_ENCODED)],
    ) -> Template:
        """Issue a token for the signed-in user; the answer is the only place it is ever shown."""
        viewer = viewer_of(request)
        if data.scope in SCOPES and not may_hold(viewer.role, data.scope):
            # the form never offers it: someone sent it by hand
            raise PermissionDeniedException(
                f"a {viewer.role} cannot hold a token of scope {data.scope}"
            )
        name = data.name.strip()
        try:
            scope = check_token_request(viewer.role, name, data.scope)
            expires_at = parse_expiry(data.expires)
        except AccountError as exc:
            error = public_reason("the token was not created", str(exc))
            return await _answer(request, sessions, HTTP_400_BAD_REQUEST, error=error, form=data)
        plain = new_token()
        async with sessions() as session, session.begin():
            row = ApiToken(
                user_id=viewer.id,
                token_sha256=hash_token(plain),
                name=name,
                scope=scope,
                expires_at=expires_at,
            )
            session.add(row)
            await session.flush()
            await session.refresh(row)
            created = token_info(row, viewer.username)
        log.info("api token issued", user=viewer.username, token_id=created.id, scope=scope)
        return await _answer(request, sessions, created=created, plain_token=plain)

    @post("/{token_id:int}/revoke", status_code=HTTP_200_OK)
    async def revoke_token(
        self, request: HTMXRequest, sessions: Sessions, token_id: FromPath[int]
    ) -> Template:
        """Revoke a token of the signed-in user (an admin: anyone's); another's is not found."""
        viewer = viewer_of(request)
        async with sessions() as session, session.begin():
            row = await session.get(ApiToken, token_id, with_for_update=True)
            if row is None or not (viewer.is_admin or row.user_id == viewer.id):
                raise NotFoundException(f"no token {token_id}")
            if row.revoked_at is None:
                row.revoked_at = datetime.now(UTC)
                log.info("api token revoked", user=viewer.username, token_id=token_id)
        return await _answer(request, sessions)
