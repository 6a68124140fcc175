"""Who may see a video, and names of the files a video's page offers."""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath
from typing import Any

from litestar import Request
from sqlalchemy.ext.asyncio import AsyncSession

from portal import queries
from portal.auth import viewer_of
from portal.errors import NotFound
from portal.models import Video

__all__ = ["download_name", "visible_video"]


async def visible_video(db: AsyncSession, request: Request[Any, Any, Any], video_id: str) -> Video:
    """The video if the user may see it; someone else's is as missing as an unknown one."""
    row = await queries.visible_video(db, video_id, viewer_of(request).owner_scope)
    if row is None:
        raise NotFound(f"no video {video_id}")
    return row


def download_name(filename: str, height: int, key: str = "") -> str:
    """``holiday-720p.mp4`` from ``holiday.mov``: plain ASCII, safe inside a quoted header
    (the type is the object ``key``'s, a conversion's may be WebM or audio; audio alone, height
    0, has no ``-0p``)."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(filename).stem).strip("._") or "video"
    extension = re.sub(r"[^a-z0-9]", "", PurePosixPath(key).suffix.lower())[:8] or "mp4"
    return f"{stem[:80]}-{height}p.{extension}" if height else f"{stem[:80]}.{extension}"
