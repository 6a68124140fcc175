"""Ladder planning (pure): which renditions a source gets, and at what size.

A rung names the *short* side, so a 1080x1920 portrait phone video is a 1080p source and its
720p rendition is 720x1280. Rotation metadata is honoured (FFmpeg auto-rotates while decoding,
so sizes here are display sizes), dimensions are even (H.264 with 4:2:0 needs it), the aspect
ratio is kept, nothing is scaled up, and a source smaller than the lowest rung still gets one
rendition at its own size.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.events import Probe
from core.profiles import Rung

__all__ = ["PlannedRendition", "display_size", "even", "plan_ladder"]


@dataclass(frozen=True)
class PlannedRendition:
    """One rendition to make: its rung label and exact output size."""

    label: int  # the rung (short side), names the files: 720p.mp4
    width: int
    height: int
    video_kbps: int
    audio_kbps: int
    audio: bool


def even(value: float) -> int:
    """Nearest even integer, at least 2."""
    return max(2, round(value / 2.0) * 2)


def display_size(probe: Probe) -> tuple[int, int]:
    """Width and height as displayed (rotation by 90 or 270 degrees swaps them)."""
    if probe.rotation % 180 == 90:
        return probe.height, probe.width
    return probe.width, probe.height


def _scaled(width: int, height: int, short: int) -> tuple[int, int]:
    if width >= height:
        return even(width * short / height), even(short)
    return even(short), even(height * short / width)


def plan_ladder(probe: Probe, rungs: tuple[Rung, ...]) -> list[PlannedRendition]:
    """The renditions for ``probe``, lowest first (the first one playable soonest)."""
    width, height = display_size(probe)
    short_side = min(width, height)
    chosen = [r for r in rungs if r.height <= short_side]
    if not chosen:
        lowest = min(rungs, key=lambda r: r.height)
        w, h = even(width), even(height)
        return [
            PlannedRendition(min(w, h), w, h, lowest.video_kbps, lowest.audio_kbps, probe.has_audio)
        ]
    planned = []
    for rung in sorted(chosen, key=lambda r: r.height):
        w, h = _scaled(width, height, rung.height)
        planned.append(
            PlannedRendition(rung.height, w, h, rung.video_kbps, rung.audio_kbps, probe.has_audio)
        )
    return planned
