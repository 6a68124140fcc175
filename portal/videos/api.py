"""The videos JSON API: typed answers (see :mod:`portal.videos.schemas`), same filters and
visibility as the pages."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get
from litestar.params import FromPath, FromQuery

from portal import queries
from portal.auth import viewer_of
from portal.deps import Db
from portal.errors import NotFound
from portal.videos.schemas import VideoDetailOut, VideoListOut, VideoOut

__all__ = ["VideosApi"]


class VideosApi(Controller):
    """``/api/videos``: the videos the caller may see."""

    path = "/api/videos"
    tags = ["videos"]  # noqa: RUF012 - Litestar reads it off the class

    @get("/")
    async def api_videos(
        self,
        request: Request[Any, Any, Any],
        db: Db,
        status: FromQuery[str] = "",
        q: FromQuery[str] = "",
        page: FromQuery[int] = 1,
    ) -> VideoListOut:
        """Videos as JSON (same filters as the page)."""
        listing = await queries.video_page(
            db, status, q.strip(), page, viewer_of(request).owner_scope
        )
        return VideoListOut(
            total=listing.total,
            page=listing.page,
            pages=listing.pages,
            videos=[VideoOut.of(v) for v in listing.videos],
        )

    @get("/{video_id:str}")
    async def api_video(
        self, request: Request[Any, Any, Any], db: Db, video_id: FromPath[str]
    ) -> VideoDetailOut:
        """One video as JSON, with its renditions."""
        detail = await queries.video_detail(db, video_id, viewer_of(request).owner_scope)
        if detail is None:
            raise NotFound(f"no video {video_id}")
        return VideoDetailOut.of(detail)
