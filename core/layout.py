"""The object layout: every key vidflow writes, derived from ids, never from user-supplied names."""

from __future__ import annotations

import re

from core.settings import StorageSettings

__all__ = ["OWNER_METADATA", "ObjectLayout", "is_upload_id"]

# User metadata on an incoming object (``x-amz-meta-vidflow-owner`` on the wire): the owner, set
# by the authenticated creator of the object (the portal, ``vidflow submit``). The ingest flow
# takes a video's owner from here, never from the announcement.
OWNER_METADATA = "vidflow-owner"

_UPLOAD_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")


def is_upload_id(value: str) -> bool:
    """Whether ``value`` can name an upload: letters, digits, ``_`` and ``-`` only, so the key
    derived from it stays one segment under ``incoming/`` (no ``..``, no ``/``)."""
    return _UPLOAD_ID.fullmatch(value) is not None


class ObjectLayout:
    """Keys of the one bucket, by prefix (prefixes are settings)."""

    def __init__(self, storage: StorageSettings) -> None:
        self._s = storage

    def chunk(self, sha256: str) -> str:
        """Content-addressed chunk: an existing one is never uploaded again."""
        return f"{self._s.prefix_chunks}/{sha256}"

    def source(self, video_id: str, ext: str = "") -> str:
        """The composed source of a video (``ext`` with its dot, or empty)."""
        return f"{self._s.prefix_sources}/{video_id}/source{ext}"

    def manifest(self, video_id: str) -> str:
        """Ordered chunk list, sizes, digests and checksums of a source."""
        return f"{self._s.prefix_sources}/{video_id}/manifest.json"

    def rendition(self, video_id: str, height: int) -> str:
        """The fast-start MP4 of one rung."""
        return f"{self._s.prefix_renditions}/{video_id}/{height}p.mp4"

    def hls_dir(self, video_id: str, height: int) -> str:
        """Prefix of one rung's HLS segments and media playlist."""
        return f"{self._s.prefix_hls}/{video_id}/{height}p"

    def hls_playlist(self, video_id: str, height: int) -> str:
        """One rung's HLS media playlist."""
        return f"{self.hls_dir(video_id, height)}/index.m3u8"

    def hls_master(self, video_id: str) -> str:
        """The HLS master playlist listing every rung."""
        return f"{self._s.prefix_hls}/{video_id}/master.m3u8"

    def poster(self, video_id: str) -> str:
        """Poster frame."""
        return f"{self._s.prefix_thumbs}/{video_id}/poster.jpg"

    def sprite(self, video_id: str) -> str:
        """Scrub-preview sprite sheet."""
        return f"{self._s.prefix_thumbs}/{video_id}/sprite.jpg"

    def sprite_vtt(self, video_id: str) -> str:
        """WebVTT thumbnails track pointing into the sprite."""
        return f"{self._s.prefix_thumbs}/{video_id}/sprite.vtt"

    def incoming(self, upload_id: str) -> str:
        """Where an upload's bytes land (never the browser's file name)."""
        return f"{self.incoming_prefix()}{upload_id}/source"

    def incoming_prefix(self) -> str:
        """Everything under which uploads land (a lifecycle rule sweeps what is left there)."""
        return f"{self._s.prefix_incoming}/"

    def playable_prefixes(self, video_id: str) -> tuple[str, ...]:
        """What of a video a viewer may fetch: renditions, HLS and previews, never its source."""
        return (
            f"{self._s.prefix_hls}/{video_id}/",
            f"{self._s.prefix_renditions}/{video_id}/",
            f"{self._s.prefix_thumbs}/{video_id}/",
        )

    def video_prefixes(self, video_id: str) -> tuple[str, ...]:
        """Every prefix holding objects of one video alone (a delete removes them all); its
        source's chunks are shared by content and are not under any of them."""
        return (*self.playable_prefixes(video_id), f"{self._s.prefix_sources}/{video_id}/")

    # issue 12 (t12c): a single conversion's or an audio-only profile's one output
    def converted(self, video_id: str, profile: str, ext: str) -> str:
        """The one output of a conversion profile (``profile`` is an event ``Id``: no slash)."""
        return f"{self._s.prefix_renditions}/{video_id}/{profile}.{ext}"

    def is_converted(self, video_id: str, key: str) -> bool:
        """Whether ``key`` is a conversion output of this video (as :meth:`converted` makes)."""
        name = key.removeprefix(f"{self._s.prefix_renditions}/{video_id}/")
        return name != key and _CONVERTED.fullmatch(name) is not None


_CONVERTED = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+@-]{0,63}\.(?:mp4|webm|mp3|m4a|ogg)")
