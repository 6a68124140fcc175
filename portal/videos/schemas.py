"""Typed JSON answers of the videos API (msgspec Structs: the OpenAPI document shows them)."""

from __future__ import annotations

from typing import Any

import msgspec

from core.progress import VideoStatus
from portal.filenames import display_filename
from portal.models import Video
from portal.queries import VideoDetail

__all__ = ["ChunkOut", "RenditionOut", "VideoDetailOut", "VideoListOut", "VideoOut"]


class _VideoFields(msgspec.Struct):
    """What the list and the detail both say of a video."""

    video_id: str
    filename: str
    status: VideoStatus
    progress: float
    error: str | None
    size: int
    sha256: str
    probe: dict[str, Any] | None


class VideoOut(_VideoFields):
    """A video's state as the API shows it."""

    @classmethod
    def of(cls, v: Video) -> VideoOut:
        return cls(**_fields(v))


class RenditionOut(msgspec.Struct):
    height: int
    width: int
    key: str
    hls: str


class ChunkOut(msgspec.Struct):
    index: int
    offset: int
    size: int
    sha256: str


class VideoDetailOut(_VideoFields):
    """One video with its renditions and the chunks its source was composed of."""

    renditions: list[RenditionOut]
    chunks: list[ChunkOut]

    @classmethod
    def of(cls, detail: VideoDetail) -> VideoDetailOut:
        return cls(
            **_fields(detail.video),
            renditions=[
                RenditionOut(height=r.height, width=r.width, key=r.key, hls=r.hls)
                for r in detail.renditions
            ],
            chunks=[
                ChunkOut(index=c.index, offset=c.offset, size=c.size, sha256=c.sha256)
                for c in detail.chunks
            ],
        )


class VideoListOut(msgspec.Struct):
    """A page of videos (same filters as the list page)."""

    total: int
    page: int
    pages: int
    videos: list[VideoOut]


def _fields(v: Video) -> dict[str, Any]:
    return {
        "video_id": v.id,
        "filename": display_filename(v.filename),
        "status": VideoStatus(v.status),
        "progress": v.progress,
        "error": v.error or None,
        "size": v.size,
        "sha256": v.sha256,
        "probe": v.probe,
    }
