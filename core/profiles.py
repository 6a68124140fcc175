"""Transcoding profiles: named ladders of rungs, each with a bit rate.

The default ladder is built in; ``VIDFLOW_TRANSCODE_PROFILES_JSON`` may add or replace profiles with
JSON such as ``{"small": [{"height": 360, "video_kbps": 800}]}``.
"""

from __future__ import annotations

import msgspec

__all__ = ["DEFAULT_LADDER", "Rung", "load_profiles"]


class Rung(msgspec.Struct, frozen=True, kw_only=True):
    """One rung: the short side in pixels and its target bit rates."""

    height: int
    video_kbps: int
    audio_kbps: int = 128


DEFAULT_LADDER: tuple[Rung, ...] = (
    Rung(height=2160, video_kbps=16000, audio_kbps=192),
    Rung(height=1440, video_kbps=9000, audio_kbps=192),
    Rung(height=1080, video_kbps=5000, audio_kbps=160),
    Rung(height=720, video_kbps=2800),
    Rung(height=480, video_kbps=1400),
    Rung(height=360, video_kbps=800, audio_kbps=96),
    Rung(height=240, video_kbps=400, audio_kbps=64),
    Rung(height=144, video_kbps=200, audio_kbps=48),
)


def load_profiles(raw_json: str) -> dict[str, tuple[Rung, ...]]:
    """The built-in ``default`` profile plus any given as JSON (rungs sorted high to low)."""
    profiles: dict[str, tuple[Rung, ...]] = {"default": DEFAULT_LADDER}
    if raw_json.strip():
        extra = msgspec.json.decode(raw_json, type=dict[str, list[Rung]])
        for name, rungs in extra.items():
            if not rungs:
                raise ValueError(f"profile {name!r} has no rungs")
            profiles[name] = tuple(sorted(rungs, key=lambda r: -r.height))
    return profiles
