"""``/upload``: the upload form (``static/upload.js`` does the work) and recent uploads."""

from __future__ import annotations

from typing import Any

from litestar import Request, get
from litestar.response import Template
from sqlalchemy import select

from portal.auth import requires_uploader, viewer_of
from portal.deps import Db, SettingsDep
from portal.models import Upload

__all__ = ["upload_page"]


@get("/upload", guards=[requires_uploader], include_in_schema=False)
async def upload_page(request: Request[Any, Any, Any], db: Db, settings: SettingsDep) -> Template:
    """The upload form (``static/upload.js`` does the work) and this user's recent uploads."""
    rows = await db.execute(
        select(Upload)
        .where(Upload.owner == viewer_of(request).username)
        .order_by(Upload.created_at.desc())
        .limit(20)
    )
    return Template(
        template_name="upload.html",
        context={
            "uploads": list(rows.scalars()),
            # each profile with its short description
            "profiles": [(n, p.description) for n, p in settings.transcode.profiles.items()],
            "default_profile": settings.transcode.default_profile,
            "max_bytes": settings.portal.max_upload_bytes,
        },
    )
