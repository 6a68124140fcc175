"""Checks of a job's CMAF outputs as a player sees them: every master playlist, media playlist
and MPD parsed, every byte range they name fetched and checked to be whole boxes (the init
``ftyp`` + ``moov``, each segment ``moof`` + ``mdat``, a ``sidx``/``styp`` allowed before)."""

from __future__ import annotations

import re
import struct
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

from minio import Minio

__all__ = ["MediaPlaylist", "boxes", "check_ladder", "parse_master", "parse_media", "parse_mpd"]

_ATTR = re.compile(r'([A-Z0-9-]+)=("[^"]*"|[^,]*)')
MPD_NS = {"d": "urn:mpeg:dash:schema:mpd:2011"}


def _attrs(line: str) -> dict[str, str]:
    return {k: v.strip('"') for k, v in _ATTR.findall(line.split(":", 1)[1])}


@dataclass
class MediaPlaylist:
    """A media playlist: its version, map (uri, offset, length or -1), segments (uri, offset,
    length or -1 for a whole object), closed or not."""

    version: int = 0
    map: tuple[str, int, int] | None = None
    segments: list[tuple[str, int, int]] = field(default_factory=list)
    ended: bool = False
    event: bool = False


def parse_master(text: str) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """(variants with their ``URI``, audio renditions) of a master playlist."""
    lines = text.splitlines()
    assert lines[0] == "#EXTM3U"
    variants, media = [], []
    for i, line in enumerate(lines):
        if line.startswith("#EXT-X-STREAM-INF:"):
            variants.append({**_attrs(line), "URI": lines[i + 1]})
        elif line.startswith("#EXT-X-MEDIA:"):
            media.append(_attrs(line))
    return variants, media


def _range(value: str) -> tuple[int, int]:
    length, _, offset = value.partition("@")
    return int(offset or 0), int(length)


def parse_media(text: str) -> MediaPlaylist:
    """A media playlist (byte-range or whole-object segments)."""
    out, pending = MediaPlaylist(), None
    assert text.startswith("#EXTM3U")
    for line in text.splitlines():
        if line.startswith("#EXT-X-VERSION:"):
            out.version = int(line.split(":")[1])
        elif line.startswith("#EXT-X-MAP:"):
            a = _attrs(line)
            offset, length = _range(a["BYTERANGE"]) if "BYTERANGE" in a else (0, -1)
            out.map = (a["URI"], offset, length)
        elif line.startswith("#EXT-X-BYTERANGE:"):
            pending = _range(line.split(":", 1)[1])
        elif line == "#EXT-X-ENDLIST":
            out.ended = True
        elif line == "#EXT-X-PLAYLIST-TYPE:EVENT":
            out.event = True
        elif line and not line.startswith("#"):
            offset, length = pending or (0, -1)
            out.segments.append((line, offset, length))
            pending = None
    return out


def parse_mpd(text: str) -> list[dict[str, object]]:
    """Every Representation of an MPD: id, contentType, codecs, width, height, BaseURL, init
    range and media ranges (inclusive ``a-b`` turned into (offset, length))."""
    root = ET.fromstring(text)
    assert root.tag == "{urn:mpeg:dash:schema:mpd:2011}MPD"
    reps: list[dict[str, object]] = []
    for aset in root.iterfind("d:Period/d:AdaptationSet", MPD_NS):
        for rep in aset.iterfind("d:Representation", MPD_NS):
            base = rep.findtext("d:BaseURL", namespaces=MPD_NS) or ""
            seglist = rep.find("d:SegmentList", MPD_NS)
            assert seglist is not None
            init = seglist.find("d:Initialization", MPD_NS)
            assert init is not None

            def span(value: str) -> tuple[int, int]:
                a, b = (int(x) for x in value.split("-"))
                return a, b - a + 1

            reps.append({
                "id": rep.get("id"), "type": aset.get("contentType"), "codecs": rep.get("codecs"),
                "width": rep.get("width"), "height": rep.get("height"), "base": base,
                "init": span(init.get("range", "")),
                "media": [span(s.get("mediaRange", ""))
                          for s in seglist.iterfind("d:SegmentURL", MPD_NS)],
                "timeline": len(seglist.findall("d:SegmentTimeline/d:S", MPD_NS)),
            })  # fmt: skip
    return reps


def boxes(data: bytes) -> list[str]:
    """Top-level box types of ``data``, which must be whole boxes and nothing else."""
    found, at = [], 0
    while at < len(data):
        assert len(data) - at >= 8, f"a partial box header at {at}"
        size, kind = struct.unpack(">I4s", data[at : at + 8])
        assert size >= 8 and at + size <= len(data), f"box {kind!r} at {at} runs past the range"
        found.append(kind.decode("latin-1"))
        at += size
    return found


def _fetch(client: Minio, bucket: str, key: str, offset: int, length: int) -> bytes:
    response = client.get_object(bucket, key, offset=offset, length=max(length, 0))
    try:
        return response.read()
    finally:
        response.close()
        response.release_conn()


def _text(client: Minio, bucket: str, key: str) -> str:
    return _fetch(client, bucket, key, 0, 0).decode()


def check_init(data: bytes) -> None:
    assert boxes(data) == ["ftyp", "moov"], boxes(data)


def check_fragment(data: bytes) -> None:
    kinds = [k for k in boxes(data) if k not in ("sidx", "styp")]
    assert kinds and kinds[0] == "moof" and kinds[-1] == "mdat" and len(kinds) % 2 == 0, kinds


def check_media(client: Minio, bucket: str, base: str, playlist: MediaPlaylist) -> int:
    """Fetch the map and every segment a playlist names; the number of segments."""
    assert playlist.version >= 6 and playlist.map is not None  # EXT-X-MAP needs 6, fMP4 7
    uri, offset, length = playlist.map
    check_init(_fetch(client, bucket, f"{base}/{uri}", offset, length))
    for uri, offset, length in playlist.segments:
        check_fragment(_fetch(client, bucket, f"{base}/{uri}", offset, length))
    return len(playlist.segments)


def check_ladder(client: Minio, bucket: str, master_key: str, mpd_key: str) -> dict[str, object]:
    """Everything a player would fetch, checked: the master, each media playlist (whole, with
    byte ranges into one MP4), the MPD (the same ranges); what was found."""
    base = master_key.rsplit("/", 1)[0]
    variants, audio = parse_master(_text(client, bucket, master_key))
    assert "#EXT-X-VERSION:7" in _text(client, bucket, master_key)
    media = {v["URI"]: parse_media(_text(client, bucket, f"{base}/{v['URI']}")) for v in variants}
    media |= {a["URI"]: parse_media(_text(client, bucket, f"{base}/{a['URI']}")) for a in audio}
    for playlist in media.values():
        assert playlist.ended and playlist.event
        assert (
            {uri for uri, _, _ in playlist.segments} == {playlist.map[0]} if playlist.map else False
        )
        assert all(length > 0 for _, _, length in playlist.segments)
        check_media(client, bucket, base, playlist)
    reps = parse_mpd(_text(client, bucket, mpd_key))
    for rep in reps:
        key = f"{base}/{rep['base']}"
        init = rep["init"]
        assert isinstance(init, tuple)
        check_init(_fetch(client, bucket, key, *init))
        ranges = rep["media"]
        assert isinstance(ranges, list) and ranges and rep["timeline"] == len(ranges)
        for offset, length in ranges:
            check_fragment(_fetch(client, bucket, key, offset, length))
        hls = next(p for p in media.values() if p.map and p.map[0] == rep["base"])
        assert [(o, n) for _, o, n in hls.segments] == ranges  # the very same bytes
    return {"variants": variants, "audio": audio, "media": media, "mpd": reps}
