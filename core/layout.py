"""The object layout: every key vidflow writes, derived from ids, never from user-supplied names."""

from __future__ import annotations

import re

from core.events import Manifest
from core.settings import StorageSettings

__all__ = ["OWNER_METADATA", "ForeignSource", "ObjectLayout", "is_upload_id"]

# User metadata on an incoming object (``x-amz-meta-vidflow-owner`` on the wire): the owner, set
# by the authenticated creator of the object (the portal, ``vidflow submit``). The ingest flow
# takes a video's owner from here, never from the announcement.
OWNER_METADATA = "vidflow-owner"

_UPLOAD_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")
# what may follow ``source`` in a video's source key: nothing, or one short extension
_SOURCE_EXT = re.compile(r"(?:\.[A-Za-z0-9]{1,16})?")
# the dedup index lives beside the sources under a name no id can take (ids begin alphanumeric)
_BY_SHA256 = "_by-sha256"
_SHA256 = re.compile(r"[0-9a-f]{64}")


class ForeignSource(ValueError):
    """A manifest names a source key the layout does not derive (a forged or broken manifest)."""


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

    def by_sha256(self, sha256: str) -> str:
        """The dedup index entry of a whole-file SHA-256: its body names the key holding those
        bytes. Beside the sources, under a name no video id can take."""
        if not _SHA256.fullmatch(sha256):
            raise ValueError("not a SHA-256 hex digest")
        return f"{self._s.prefix_sources}/{_BY_SHA256}/{sha256}"

    def is_source_key(self, key: str) -> bool:
        """Whether ``key`` is one the layout derives to hold a source's bytes: some video's
        ``sources/{video}/source[.ext]`` or some upload's ``incoming/{upload}/source``."""
        sources = f"{self._s.prefix_sources}/"
        if key.startswith(sources):
            video_id, _, rest = key[len(sources) :].partition("/")
            return (
                is_upload_id(video_id) and rest.startswith("source")
                and _SOURCE_EXT.fullmatch(rest[len("source") :]) is not None
            )  # fmt: skip
        if key.startswith(self.incoming_prefix()):
            upload_id, _, rest = key[len(self.incoming_prefix()) :].partition("/")
            return is_upload_id(upload_id) and rest == "source"
        return False

    def source_of(self, manifest: Manifest, video_id: str) -> str:
        """The key holding ``video_id``'s bytes, from its manifest (the one record of where they
        are): ``sources/{video}/source`` for a manifest of the earlier layout (no key). A key the
        layout does not derive, or a manifest of another video, raises :class:`ForeignSource`."""
        if manifest.video_id != video_id:
            raise ForeignSource("the manifest is another video's")
        key = manifest.source_key or self.source(video_id)
        if not self.is_source_key(key):
            raise ForeignSource("the manifest names a key that holds no source")
        return key

    def manifest(self, video_id: str) -> str:
        """Ordered chunk list, sizes, digests and checksums of a source."""
        return f"{self._s.prefix_sources}/{video_id}/manifest.json"

    def rendition(self, video_id: str, height: int) -> str:
        """The one fragmented MP4 (CMAF) of a rung: HLS byte ranges, DASH and the download."""
        return f"{self._s.prefix_renditions}/{video_id}/{height}p.mp4"

    def hls_playlist(self, video_id: str, height: int) -> str:
        """One rung's HLS media playlist (byte ranges into :meth:`rendition`; while the rung
        encodes, a growing EVENT playlist of :meth:`live_segment` objects)."""
        return f"{self._s.prefix_renditions}/{video_id}/{height}p.m3u8"

    def audio(self, video_id: str) -> str:
        """The job's one audio track (fragmented MP4), shared by every rung."""
        return f"{self._s.prefix_renditions}/{video_id}/audio.mp4"

    def audio_playlist(self, video_id: str) -> str:
        """The HLS media playlist of :meth:`audio` (the master's audio group)."""
        return f"{self._s.prefix_renditions}/{video_id}/audio.m3u8"

    def hls_master(self, video_id: str) -> str:
        """The HLS master playlist listing every rung (beside the renditions)."""
        return f"{self._s.prefix_renditions}/{video_id}/master.m3u8"

    def dash_manifest(self, video_id: str) -> str:
        """The DASH MPD: byte ranges into the same fragmented MP4s as the HLS playlists."""
        return f"{self._s.prefix_renditions}/{video_id}/manifest.mpd"

    def live_dir(self, video_id: str, track: str) -> str:
        """Prefix of a track's temporary fragments while it encodes (``track``: ``720p`` or
        ``audio``); removed when the track's MP4 is up (bytes held twice only while a job runs)."""
        return f"{self._s.prefix_renditions}/{video_id}/{track}.live"

    def live_segment(self, video_id: str, track: str, name: str) -> str:
        """One temporary object of a track being encoded (``init.mp4`` or ``{n}.m4s``)."""
        return f"{self.live_dir(video_id, track)}/{name}"

    def legacy_hls_dir(self, video_id: str, height: int) -> str:
        """Old layout (before CMAF): prefix of one rung's TS segments and playlist; videos made
        then keep playing, so it stays readable (and is removed with the video)."""
        return f"{self._s.prefix_hls}/{video_id}/{height}p"

    def legacy_hls_playlist(self, video_id: str, height: int) -> str:
        """Old layout: one rung's TS media playlist."""
        return f"{self.legacy_hls_dir(video_id, height)}/index.m3u8"

    def legacy_hls_master(self, video_id: str) -> str:
        """Old layout: the master playlist of TS rungs."""
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
        """What of a video a viewer may fetch: renditions with their playlists, MPD and
        temporaries, the old layout's HLS, previews; never its source."""
        return (
            f"{self._s.prefix_hls}/{video_id}/",
            f"{self._s.prefix_renditions}/{video_id}/",
            f"{self._s.prefix_thumbs}/{video_id}/",
        )

    def video_prefixes(self, video_id: str) -> tuple[str, ...]:
        """Every prefix holding objects of one video (a delete removes them all, but the bytes
        another video's manifest still names: an identical file's, ``dataflows/transcode/purge``);
        its source may also be its upload (``incoming/``) or chunks of the earlier layout."""
        return (*self.playable_prefixes(video_id), f"{self._s.prefix_sources}/{video_id}/")

    # a single conversion's or an audio-only profile's one output
    def converted(self, video_id: str, profile: str, ext: str) -> str:
        """The one output of a conversion profile (``profile`` is an event ``Id``: no slash)."""
        return f"{self._s.prefix_renditions}/{video_id}/{profile}.{ext}"

    def is_converted(self, video_id: str, key: str) -> bool:
        """Whether ``key`` is a conversion output of this video (as :meth:`converted` makes)."""
        name = key.removeprefix(f"{self._s.prefix_renditions}/{video_id}/")
        return name != key and _CONVERTED.fullmatch(name) is not None


_CONVERTED = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+@-]{0,63}\.(?:mp4|webm|mp3|m4a|ogg)")
