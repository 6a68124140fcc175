"""CMAF tracks as playlists (pure): one fragmented MP4 per track, served by byte ranges.

FFmpeg's hls muxer (``-hls_segment_type fmp4 -hls_flags single_file``) writes one MP4 per track,
its init (``ftyp`` + ``moov``) first, then one fragment (``sidx`` + ``moof`` + ``mdat``) per
segment, and an EVENT playlist of byte ranges into it that grows as segments complete. This
module reads that playlist (:func:`parse_media_playlist`) and writes the playlists vidflow
publishes from it: the final one (byte ranges into the stored MP4) and the live one (while the
track encodes, each finished fragment is a temporary object of its own, since an S3 object
cannot be appended to).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = [
    "Segment",
    "Track",
    "avc1_from_init",
    "byterange_playlist",
    "live_playlist",
    "parse_media_playlist",
    "peak_bandwidth",
    "video_codec_from_init",
]

_BYTERANGE = re.compile(r"(\d+)@(\d+)")
_MAP = re.compile(r'#EXT-X-MAP:URI="[^"]*",BYTERANGE="(\d+)@(\d+)"')


@dataclass(frozen=True)
class Segment:
    """One fragment of a track: its duration and where its bytes are in the track's MP4."""

    duration: float
    offset: int
    length: int


@dataclass(frozen=True)
class Track:
    """A track's MP4 as a playlist describes it: the init's byte range and the fragments so far;
    ``ended``: the playlist is closed (``#EXT-X-ENDLIST``), the track is whole."""

    init_length: int
    segments: tuple[Segment, ...] = field(default_factory=tuple)
    ended: bool = False

    @property
    def size(self) -> int:
        """Bytes of the MP4 the playlist covers (init and every listed fragment)."""
        last = self.segments[-1] if self.segments else None
        return last.offset + last.length if last else self.init_length

    @property
    def duration(self) -> float:
        """Seconds listed."""
        return sum(s.duration for s in self.segments)


def parse_media_playlist(text: str) -> Track | None:
    """The track an FFmpeg fMP4 single-file playlist describes; None before its init is written
    (or for a playlist of another shape, such as the old TS layout)."""
    found = _MAP.search(text)
    if found is None:
        return None
    segments, duration = [], 0.0
    for line in text.splitlines():
        if line.startswith("#EXTINF:"):
            duration = float(line[len("#EXTINF:") :].split(",", 1)[0])
        elif line.startswith("#EXT-X-BYTERANGE:"):
            br = _BYTERANGE.fullmatch(line[len("#EXT-X-BYTERANGE:") :].strip())
            if br is not None:
                segments.append(Segment(duration, int(br.group(2)), int(br.group(1))))
    init_length, init_offset = int(found.group(1)), int(found.group(2))
    if init_offset != 0:
        return None
    return Track(init_length, tuple(segments), "#EXT-X-ENDLIST" in text)


def _head(track: Track) -> list[str]:
    target = max((s.duration for s in track.segments), default=1.0)
    return [
        "#EXTM3U",
        "#EXT-X-VERSION:7",
        f"#EXT-X-TARGETDURATION:{max(1, round(target + 0.499))}",
        "#EXT-X-MEDIA-SEQUENCE:0",
        "#EXT-X-PLAYLIST-TYPE:EVENT",
        "#EXT-X-INDEPENDENT-SEGMENTS",
    ]


def byterange_playlist(track: Track, uri: str) -> str:
    """The media playlist of a stored track: ``EXT-X-MAP`` and ``EXT-X-BYTERANGE`` into ``uri``
    (relative to the playlist); closed with ``#EXT-X-ENDLIST`` when the track is whole."""
    lines = [*_head(track), f'#EXT-X-MAP:URI="{uri}",BYTERANGE="{track.init_length}@0"']
    for s in track.segments:
        lines += [f"#EXTINF:{s.duration:.6f},", f"#EXT-X-BYTERANGE:{s.length}@{s.offset}", uri]
    if track.ended:
        lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"


def live_playlist(
    track: Track,
    init_uri: str,
    segment_uri: Callable[[int], str],
    offset_in: Callable[[int], int | None] = lambda n: None,
) -> str:
    """The growing EVENT playlist of a track still encoding, never closed (the final playlist
    replaces it): fragment ``n`` is in the temporary object ``segment_uri(n)``, the whole of it,
    or at ``offset_in(n)`` (an ``EXT-X-BYTERANGE``) when that object holds several fragments."""
    lines = [*_head(track), f'#EXT-X-MAP:URI="{init_uri}"']
    for n, s in enumerate(track.segments):
        lines.append(f"#EXTINF:{s.duration:.6f},")
        offset = offset_in(n)
        if offset is not None:
            lines.append(f"#EXT-X-BYTERANGE:{s.length}@{offset}")
        lines.append(segment_uri(n))
    return "\n".join(lines) + "\n"


def peak_bandwidth(track: Track) -> int:
    """Bits per second of the track's densest fragment (HLS ``BANDWIDTH`` is a peak)."""
    rates = [s.length * 8 / s.duration for s in track.segments if s.duration > 0]
    return max(1, round(max(rates, default=0.0)))


def avc1_from_init(init: bytes) -> str:
    """RFC 6381 ``avc1.PPCCLL`` from the init's ``avcC`` box (profile, constraint flags and level
    as the encoder wrote them in the SPS); "" when the init has no H.264 track."""
    at = init.find(b"avcC")
    if at < 0 or len(init) < at + 8:
        return ""
    return "avc1." + init[at + 5 : at + 8].hex()


def hvc1_from_init(init: bytes) -> str:
    """RFC 6381 ``hvc1.…`` from the init's ``hvcC`` box (ISO/IEC 14496-15 annex E): profile
    space and idc, the compatibility flags bit-reversed in hex, tier and level, then the
    constraint bytes without trailing zeros; "" when the init has no HEVC track."""
    at = init.find(b"hvcC")
    if at < 0 or len(init) < at + 17:
        return ""
    box = init[at + 4 : at + 17]  # configurationVersion, then the general profile fields
    space, tier, idc = box[1] >> 6, (box[1] >> 5) & 1, box[1] & 0x1F
    flags = int.from_bytes(box[2:6], "big")
    reversed_flags = int(f"{flags:032b}"[::-1], 2)
    constraints = list(box[6:12])
    while constraints and constraints[-1] == 0:
        constraints.pop()
    parts = [
        "hvc1",
        ("", "A", "B", "C")[space] + str(idc),
        f"{reversed_flags:X}",
        ("L", "H")[tier] + str(box[12]),
        *(f"{c:X}" for c in constraints),
    ]
    return ".".join(parts)


def video_codec_from_init(init: bytes) -> str:
    """The master's ``CODECS`` entry of a video track, read from its init segment (H.264 or
    HEVC, the codecs a CMAF ladder carries here); "" when neither is there."""
    return avc1_from_init(init) or hvc1_from_init(init)
