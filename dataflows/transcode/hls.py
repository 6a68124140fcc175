"""HLS master playlists and WebVTT thumbnail tracks (pure text)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MasterEntry", "avc1_codec", "master_playlist", "sprite_vtt"]

_PROFILE_IDC = {"baseline": 0x42, "constrained baseline": 0x42, "main": 0x4D, "high": 0x64}


@dataclass(frozen=True)
class MasterEntry:
    """A rung as the master playlist lists it."""

    label: int
    width: int
    height: int
    bandwidth: int
    codecs: str
    uri: str


def avc1_codec(profile: str, level: int, audio: bool) -> str:
    """RFC 6381 codec string, e.g. ``avc1.64001f,mp4a.40.2``."""
    idc = _PROFILE_IDC.get(profile.lower(), 0x64)
    video = f"avc1.{idc:02x}00{max(level, 0):02x}"
    return f"{video},mp4a.40.2" if audio else video


def master_playlist(entries: list[MasterEntry]) -> str:
    """The master playlist, highest rung first (players pick from it by bandwidth)."""
    lines = ["#EXTM3U", "#EXT-X-VERSION:3", "#EXT-X-INDEPENDENT-SEGMENTS"]
    for entry in sorted(entries, key=lambda e: -e.bandwidth):
        lines.append(
            f"#EXT-X-STREAM-INF:BANDWIDTH={entry.bandwidth},"
            f'RESOLUTION={entry.width}x{entry.height},CODECS="{entry.codecs}"'
        )
        lines.append(entry.uri)
    return "\n".join(lines) + "\n"


def _clock(seconds: float) -> str:
    millis = round(seconds * 1000)
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}.{millis:03d}"


def sprite_vtt(
    duration: float, interval: float, columns: int, thumb_w: int, thumb_h: int, sprite_uri: str
) -> str:
    """Cues pointing at each thumbnail of the sprite (``#xywh=`` media fragments)."""
    lines = ["WEBVTT", ""]
    index, start = 0, 0.0
    while start < duration:
        end = min(duration, start + interval)
        x, y = (index % columns) * thumb_w, (index // columns) * thumb_h
        lines += [
            f"{_clock(start)} --> {_clock(end)}",
            f"{sprite_uri}#xywh={x},{y},{thumb_w},{thumb_h}",
            "",
        ]
        index += 1
        start = end
    return "\n".join(lines)
