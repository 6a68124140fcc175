"""When a video is playable, judged from the bucket the way a player reads it.

HLS: the master playlist names a variant whose media playlist lists at least one segment, and
the bytes of that segment (and of its ``EXT-X-MAP`` init section, and of the first segment of
the variant's audio group when it has one) can be fetched. Both layouts count: a file per
segment (MPEG-TS) and byte ranges of one fragmented MP4 per rung (``EXT-X-BYTERANGE``).
DASH: every content type of the manifest's first period has a representation whose init and
first media bytes can be fetched (``SegmentBase``, ``SegmentList`` or ``SegmentTemplate``).

Parsing is pure; fetching goes through a :class:`Store` (the bench's bucket; a dict in tests).
"""

from __future__ import annotations

import posixpath
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

__all__ = [
    "Master",
    "Piece",
    "Store",
    "Track",
    "Variant",
    "dash_playable",
    "hls_playable",
    "parse_master",
    "parse_media",
    "parse_mpd",
    "resolve",
]

_ATTRIBUTE = re.compile(r'([A-Z0-9-]+)=("[^"]*"|[^,]*)')
_MPD = "{urn:mpeg:dash:schema:mpd:2011}"
_TEMPLATE_VAR = re.compile(r"\$(RepresentationID|Number|Bandwidth|Time)(%0(\d+)d)?\$")


@dataclass(frozen=True)
class Piece:
    """Bytes a player fetches: the whole of ``uri``, or ``length`` bytes from ``offset``."""

    uri: str
    offset: int = 0
    length: int | None = None


@dataclass(frozen=True)
class Variant:
    """A ``#EXT-X-STREAM-INF`` entry: its media playlist and the audio group it plays with."""

    uri: str
    audio: str | None = None


@dataclass(frozen=True)
class Master:
    """A master playlist: its variants and, per audio group, the playlists of that group."""

    variants: list[Variant]
    audio: dict[str, list[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class Track:
    """One DASH representation: its content type and the first pieces a player fetches."""

    kind: str
    init: Piece | None
    first: Piece | None


class Store(Protocol):
    """What of the bucket a player needs: a text object, and whether some bytes are there."""

    def text(self, key: str) -> str | None: ...

    def has(self, piece: Piece) -> bool: ...


def _attributes(line: str) -> dict[str, str]:
    _, _, rest = line.partition(":")
    return {k: v.strip('"') for k, v in _ATTRIBUTE.findall(rest)}


def _byterange(value: str, uri: str, follows: dict[str, int]) -> Piece:
    """``n[@o]``: without ``@o`` the range starts where the previous one of ``uri`` ended."""
    length, _, offset = value.partition("@")
    start = int(offset) if offset else follows.get(uri, 0)
    follows[uri] = start + int(length)
    return Piece(uri, start, int(length))


def parse_master(text: str) -> Master:
    """The variants and audio groups of a master playlist (URIs as written)."""
    variants: list[Variant] = []
    audio: dict[str, list[str]] = {}
    pending: dict[str, str] | None = None
    for line in (raw.strip() for raw in text.splitlines()):
        if line.startswith("#EXT-X-STREAM-INF"):
            pending = _attributes(line)
        elif line.startswith("#EXT-X-MEDIA:"):
            media = _attributes(line)
            if media.get("TYPE") == "AUDIO" and "URI" in media:
                audio.setdefault(media.get("GROUP-ID", ""), []).append(media["URI"])
        elif line and not line.startswith("#") and pending is not None:
            variants.append(Variant(line, pending.get("AUDIO")))
            pending = None
    return Master(variants, audio)


def parse_media(text: str) -> tuple[Piece | None, list[Piece]]:
    """A media playlist's init section (``EXT-X-MAP``, or None) and its segments in order."""
    init: Piece | None = None
    segments: list[Piece] = []
    follows: dict[str, int] = {}
    ranged: str | None = None
    for line in (raw.strip() for raw in text.splitlines()):
        if line.startswith("#EXT-X-MAP:"):
            found = _attributes(line)
            uri = found.get("URI", "")
            init = _byterange(found["BYTERANGE"], uri, {}) if "BYTERANGE" in found else Piece(uri)
        elif line.startswith("#EXT-X-BYTERANGE:"):
            ranged = line.partition(":")[2]
        elif line and not line.startswith("#"):
            segments.append(_byterange(ranged, line, follows) if ranged else Piece(line))
            ranged = None
    return init, segments


def _range(value: str | None) -> tuple[int, int] | None:
    if not value:
        return None
    first, _, last = value.partition("-")
    return int(first), int(last) - int(first) + 1


def _piece(uri: str, byte_range: str | None) -> Piece:
    found = _range(byte_range)
    return Piece(uri, *found) if found else Piece(uri)


def _expand(template: str, rep: ET.Element, number: int, time: int) -> str:
    """A ``SegmentTemplate`` name for one segment (``$Number%05d$`` and the like)."""
    values: dict[str, int | str] = {
        "RepresentationID": rep.get("id", ""), "Number": number, "Time": time,
        "Bandwidth": rep.get("bandwidth", "0"),
    }  # fmt: skip

    def one(match: re.Match[str]) -> str:
        value, width = values[match.group(1)], match.group(3)
        return f"{int(value):0{int(width)}d}" if width else str(value)

    return _TEMPLATE_VAR.sub(one, template)


def _inherited(tag: str, *levels: ET.Element) -> ET.Element | None:
    """The element named ``tag`` on the nearest level (representation first)."""
    return next((el for level in levels if (el := level.find(_MPD + tag)) is not None), None)


def _base(*levels: ET.Element) -> str:
    """BaseURLs from the outermost level inwards, each relative to the one before."""
    base = ""
    for level in reversed(levels):
        found = level.find(_MPD + "BaseURL")
        if found is not None and found.text:
            base = posixpath.join(posixpath.dirname(base) if base else "", found.text.strip())
    return base


def _from_segment_base(segment_base: ET.Element, base: str) -> tuple[Piece | None, Piece]:
    found = segment_base.find(_MPD + "Initialization")
    init = _piece(base, found.get("range")) if found is not None else None
    index = _range(segment_base.get("indexRange"))
    # the media follows the index: one byte past it proves the first fragment has begun
    return init, Piece(base, index[0] + index[1], 1) if index else Piece(base)


def _from_segment_list(listed: ET.Element, base: str) -> tuple[Piece | None, Piece | None]:
    found = listed.find(_MPD + "Initialization")
    init = _piece(found.get("sourceURL") or base, found.get("range")) if found is not None else None
    first = listed.find(_MPD + "SegmentURL")
    if first is None:
        return init, None
    return init, _piece(first.get("media") or base, first.get("mediaRange"))


def _from_template(
    template: ET.Element, rep: ET.Element, base: str
) -> tuple[Piece | None, Piece | None]:
    number = int(template.get("startNumber", "1"))
    timeline = template.find(f"{_MPD}SegmentTimeline/{_MPD}S")
    time = int(timeline.get("t", "0")) if timeline is not None else 0
    folder = posixpath.dirname(base) if base and not base.endswith("/") else base

    def named(attribute: str) -> Piece | None:
        value = template.get(attribute)
        return Piece(posixpath.join(folder, _expand(value, rep, number, time))) if value else None

    return named("initialization"), named("media")


def _track(kind: str, rep: ET.Element, adaptation: ET.Element, root: ET.Element) -> Track:
    base = _base(rep, adaptation, root)
    if (segment_base := _inherited("SegmentBase", rep, adaptation)) is not None:
        return Track(kind, *_from_segment_base(segment_base, base))
    if (listed := _inherited("SegmentList", rep, adaptation)) is not None:
        return Track(kind, *_from_segment_list(listed, base))
    if (template := _inherited("SegmentTemplate", rep, adaptation)) is not None:
        return Track(kind, *_from_template(template, rep, base))
    return Track(kind, None, Piece(base) if base else None)


def _kind(adaptation: ET.Element, rep: ET.Element) -> str:
    declared = adaptation.get("contentType")
    if declared:
        return declared
    mime = rep.get("mimeType") or adaptation.get("mimeType") or ""
    return mime.partition("/")[0] or "unknown"


def parse_mpd(text: str) -> list[Track]:
    """Every representation of the manifest's first period, with the pieces it starts with."""
    root = ET.fromstring(text)  # our own bucket's manifest, written by our own flow
    period = root.find(_MPD + "Period")
    if period is None:
        return []
    return [
        _track(_kind(adaptation, rep), rep, adaptation, root)
        for adaptation in period.findall(_MPD + "AdaptationSet")
        for rep in adaptation.findall(_MPD + "Representation")
    ]


def resolve(base_key: str, uri: str) -> str | None:
    """The bucket key of ``uri`` written in the object ``base_key`` (None: not in the bucket)."""
    if "://" in uri or uri.startswith("/"):
        return None
    key = posixpath.normpath(posixpath.join(posixpath.dirname(base_key), uri.split("?")[0]))
    return None if key.startswith("..") else key


def _fetchable(store: Store, base_key: str, pieces: Iterator[Piece | None]) -> bool:
    for piece in pieces:
        if piece is None:
            continue
        key = resolve(base_key, piece.uri)
        if key is None or not store.has(Piece(key, piece.offset, piece.length)):
            return False
    return True


def _media_playable(store: Store, master_key: str, uri: str) -> bool:
    key = resolve(master_key, uri)
    text = store.text(key) if key else None
    if key is None or text is None:
        return False
    init, segments = parse_media(text)
    return bool(segments) and _fetchable(store, key, iter((init, segments[0])))


def hls_playable(store: Store, master_key: str) -> bool:
    """Whether a player given ``master_key`` could start now (see the module docstring)."""
    text = store.text(master_key)
    if text is None:
        return False
    master = parse_master(text)
    for variant in master.variants:
        if not _media_playable(store, master_key, variant.uri):
            continue
        group = master.audio.get(variant.audio or "", [])
        if not group or any(_media_playable(store, master_key, uri) for uri in group):
            return True
    return False


def dash_playable(store: Store, mpd_key: str) -> bool:
    """Whether a DASH player given ``mpd_key`` could start now: each content type has a
    representation whose first pieces are there."""
    text = store.text(mpd_key)
    if text is None:
        return False
    tracks = parse_mpd(text)
    kinds = {track.kind for track in tracks}
    return bool(kinds) and all(
        any(
            track.first is not None and _fetchable(store, mpd_key, iter((track.init, track.first)))
            for track in tracks
            if track.kind == kind
        )
        for kind in kinds
    )
