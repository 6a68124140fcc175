"""Which rungs the portal joins with their audio for a download, and where that download is:
shared by the video page (its links) and the download route."""

from __future__ import annotations

from core.layout import ObjectLayout
from portal.models import Rendition

__all__ = ["download_path", "is_cmaf_rung"]


def download_path(video_id: str, height: int) -> str:
    """The portal's address of a rung's download (:mod:`portal.files.download`)."""
    return f"/videos/{video_id}/download/{height}"


def is_cmaf_rung(layout: ObjectLayout, video_id: str, rung: Rendition) -> bool:
    """Whether ``rung`` is stored as the CMAF layout stores one: its video alone in
    ``renditions/{video}/{h}p.mp4``, played through its byte-range playlist beside it (an
    earlier layout's MP4 has its audio in; a conversion's output is whole)."""
    return rung.key == layout.rendition(video_id, rung.height) and rung.hls == (
        layout.hls_playlist(video_id, rung.height)
    )
