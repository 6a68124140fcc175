"""The DASH MPD of a job (pure): the same fragmented MP4s the HLS playlists name, by byte range.

Each rung is a Representation of one video AdaptationSet and the audio track one of an audio
AdaptationSet; every Representation is a ``SegmentList`` whose ``Initialization`` range is the
init (``ftyp`` + ``moov``) and whose ``SegmentURL mediaRange`` are the fragments, exactly the
ranges of the HLS media playlist. No second copy of any byte.
"""

from __future__ import annotations

from dataclasses import dataclass
from xml.sax.saxutils import quoteattr

from dataflows.transcode.hls import MasterEntry
from dataflows.transcode.packaging import Track

__all__ = ["DashTrack", "dash_manifest"]

TIMESCALE = 1000  # SegmentList durations in milliseconds


@dataclass(frozen=True)
class DashTrack:
    """A whole track as the MPD lists it: its master entry and its fragments."""

    entry: MasterEntry
    track: Track


def _duration(seconds: float) -> str:
    return f"PT{seconds:.3f}S"


def _representation(rep_id: str, item: DashTrack, attrs: str) -> list[str]:
    entry, track = item.entry, item.track
    codec = entry.codecs.split(",")[0]
    lines = [
        f'      <Representation id={quoteattr(rep_id)} bandwidth="{entry.bandwidth}" '
        f"codecs={quoteattr(codec)}{attrs}>",
        f"        <BaseURL>{entry.media}</BaseURL>",
        f'        <SegmentList timescale="{TIMESCALE}">',
        f'          <Initialization range="0-{track.init_length - 1}"/>',
        "          <SegmentTimeline>",
    ]
    start = 0
    for s in track.segments:
        millis = round(s.duration * TIMESCALE)
        lines.append(f'            <S t="{start}" d="{millis}"/>')
        start += millis
    lines.append("          </SegmentTimeline>")
    lines += [
        f'          <SegmentURL mediaRange="{s.offset}-{s.offset + s.length - 1}"/>'
        for s in track.segments
    ]
    lines += ["        </SegmentList>", "      </Representation>"]
    return lines


def dash_manifest(tracks: list[DashTrack]) -> str:
    """A static MPD (main profile: SegmentList) of the whole tracks given; its duration is the
    longest track's."""
    duration = max((t.track.duration for t in tracks), default=0.0)
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static" '
        'profiles="urn:mpeg:dash:profile:isoff-main:2011" '
        f'mediaPresentationDuration="{_duration(duration)}" minBufferTime="PT2S">',
        f'  <Period id="0" start="PT0S" duration="{_duration(duration)}">',
    ]
    videos = sorted(
        (t for t in tracks if t.entry.kind != "audio"), key=lambda t: -t.entry.bandwidth
    )
    if videos:
        lines.append(
            '    <AdaptationSet id="0" contentType="video" mimeType="video/mp4" '
            'segmentAlignment="true" startWithSAP="1">'
        )
        for item in videos:
            e = item.entry
            attrs = f' width="{e.width}" height="{e.height}"'
            lines += _representation(f"{e.label}p", item, attrs)
        lines.append("    </AdaptationSet>")
    audio = [t for t in tracks if t.entry.kind == "audio"]
    for item in audio[:1]:
        lines.append(
            '    <AdaptationSet id="1" contentType="audio" mimeType="audio/mp4" lang="und" '
            'segmentAlignment="true" startWithSAP="1">'
        )
        lines += _representation("audio", item, "")
        lines.append("    </AdaptationSet>")
    lines += ["  </Period>", "</MPD>"]
    return "\n".join(lines) + "\n"
