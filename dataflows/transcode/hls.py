"""HLS master playlists and WebVTT thumbnail tracks (pure text)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "AUDIO_CODEC",
    "AUDIO_GROUP",
    "MasterEntry",
    "avc1_codec",
    "master_playlist",
    "sprite_vtt",
]

_PROFILE_IDC = {"baseline": 0x42, "constrained baseline": 0x42, "main": 0x4D, "high": 0x64}


@dataclass(frozen=True)
class MasterEntry:
    """A rung as the master playlist lists it."""

    label: int
    width: int
    height: int
    bandwidth: int
    codecs: str
    uri: str  # the media playlist, relative to the master
    kind: str = "video"  # "audio": the job's one audio track (EXT-X-MEDIA), label 0
    media: str = ""  # the track's MP4, relative to the master ("" in the old TS layout)
    live: bool = False  # listed while it encodes (its playlist grows): not in the MPD yet


AUDIO_GROUP = "aud"
AUDIO_CODEC = "mp4a.40.2"  # AAC-LC


def avc1_codec(profile: str, level: int, audio: bool) -> str:
    """RFC 6381 codec string, e.g. ``avc1.64001f,mp4a.40.2``."""
    idc = _PROFILE_IDC.get(profile.lower(), 0x64)
    video = f"avc1.{idc:02x}00{max(level, 0):02x}"
    return f"{video},mp4a.40.2" if audio else video


def master_playlist(entries: list[MasterEntry]) -> str:
    """The master playlist (version 7: fMP4 segments by byte range), highest rung first
    (players pick from it by bandwidth); with an audio entry, every rung names its group and
    counts its bit rate and codec."""
    audio = next((e for e in entries if e.kind == "audio"), None)
    lines = ["#EXTM3U", "#EXT-X-VERSION:7", "#EXT-X-INDEPENDENT-SEGMENTS"]
    if audio is not None:
        lines.append(
            f'#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="{AUDIO_GROUP}",NAME="audio",DEFAULT=YES,'
            f'AUTOSELECT=YES,CHANNELS="2",URI="{audio.uri}"'
        )
    videos = [e for e in entries if e.kind != "audio"]
    for entry in sorted(videos, key=lambda e: -e.bandwidth):
        bandwidth, codecs, group = entry.bandwidth, entry.codecs, ""
        if audio is not None:
            bandwidth += audio.bandwidth
            codecs = f"{entry.codecs.split(',')[0]},{audio.codecs}"
            group = f',AUDIO="{AUDIO_GROUP}"'
        lines.append(
            f"#EXT-X-STREAM-INF:BANDWIDTH={bandwidth},"
            f'RESOLUTION={entry.width}x{entry.height},CODECS="{codecs}"{group}'
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
