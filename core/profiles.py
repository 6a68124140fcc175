"""Transcoding profiles: what a job makes.

A profile is one of three kinds:

- ``ladder``: an adaptive ladder of rungs (HLS), H.264 by default, HEVC or AV1 if asked;
- ``single``: one conversion, at the source's size or a given short side, in one container
  (``mp4`` with any codec, ``webm`` with VP9 or AV1 and Opus);
- ``audio``: the audio alone, its file type following its codec (MP3 ``.mp3``, AAC ``.m4a``,
  Opus ``.ogg``, or ``.webm`` when the container says so).

The built-in profiles are below; ``VIDFLOW_TRANSCODE_PROFILES_JSON`` may add or replace
profiles: a list of rungs is a ladder as before (``{"small": [{"height": 360, "video_kbps":
800}]}``), an object is a full profile (``{"clip": {"kind": "single", "video_codec": "vp9",
"container": "webm", "audio_codec": "opus", "height": 480}}``). Which FFmpeg encoders a
profile needs is :attr:`Profile.encoders`; whether the installed FFmpeg has them is checked
where FFmpeg is (``connectors.ffmpeg.refuse_unsupported``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, Literal

import msgspec

__all__ = [
    "BUILTIN_PROFILES",
    "DEFAULT_LADDER",
    "AudioCodec",
    "Container",
    "Profile",
    "ProfileKind",
    "Rung",
    "VideoCodec",
    "load_profiles",
    "missing_encoders",
]

ProfileKind = Literal["ladder", "single", "audio"]
VideoCodec = Literal["h264", "hevc", "av1", "vp9"]
Container = Literal["mp4", "webm", "ogg"]
AudioCodec = Literal["aac", "opus", "mp3"]

VIDEO_ENCODERS: Mapping[str, str] = {
    "h264": "libx264",
    "hevc": "libx265",
    "av1": "libsvtav1",
    "vp9": "libvpx-vp9",
}
AUDIO_ENCODERS: Mapping[str, str] = {"aac": "aac", "opus": "libopus", "mp3": "libmp3lame"}
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+@-]{0,63}")  # one key segment (core.events Id)
DESCRIPTION_MAX = 120


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

# HEVC, AV1 and VP9 reach H.264's quality at about this share of its bit rate
_EFFICIENCY: Mapping[str, float] = {"h264": 1.0, "hevc": 0.6, "av1": 0.5, "vp9": 0.6}


class Profile(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What a job makes; :meth:`validate` says whether the combination can exist."""

    kind: ProfileKind = "ladder"
    description: str = ""
    video_codec: VideoCodec = "h264"
    container: Container = "mp4"
    audio_codec: AudioCodec = "aac"
    rungs: tuple[Rung, ...] = ()  # a ladder's, high to low
    height: int = 0  # a single conversion's short side; 0: the source's size
    video_kbps: int = 0  # a single conversion's; 0: by codec and size (:meth:`video_rate`)
    audio_kbps: int = 128

    def validate(self, name: str) -> Profile:
        """This profile, rungs sorted high to low, or a ``ValueError`` naming what is wrong."""
        if not _NAME.fullmatch(name):
            raise ValueError(f"profile name {name!r}: letters, digits and ._+@- only, 64 at most")
        if len(self.description) > DESCRIPTION_MAX or "\n" in self.description:
            raise ValueError(f"profile {name!r}: description is one line of 120 characters")
        if self.height < 0 or self.video_kbps < 0 or not 8 <= self.audio_kbps <= 512:
            raise ValueError(f"profile {name!r}: height, video_kbps or audio_kbps out of range")
        if self.kind == "ladder":
            if not self.rungs:
                raise ValueError(f"profile {name!r} has no rungs")
            if self.container != "mp4" or self.audio_codec != "aac":
                raise ValueError(f"profile {name!r}: a ladder is MP4 (CMAF) segments with AAC")
            if self.video_codec == "vp9":
                raise ValueError(f"profile {name!r}: a ladder is H.264, HEVC or AV1, not VP9")
            return msgspec.structs.replace(
                self, rungs=tuple(sorted(self.rungs, key=lambda r: -r.height))
            )
        if self.rungs:
            raise ValueError(f"profile {name!r}: only a ladder has rungs")
        if self.kind == "single" and self.container == "ogg":
            raise ValueError(f"profile {name!r}: Ogg holds audio only; use mp4 or webm")
        if self.container == "webm" and self.audio_codec != "opus":
            raise ValueError(f"profile {name!r}: WebM carries Opus audio, not {self.audio_codec}")
        if (
            self.container == "webm"
            and self.kind == "single"
            and self.video_codec
            not in (
                "vp9",
                "av1",
            )
        ):
            raise ValueError(f"profile {name!r}: WebM carries VP9 or AV1, not {self.video_codec}")
        if self.container == "ogg" and self.audio_codec != "opus":
            raise ValueError(f"profile {name!r}: Ogg output here is Opus only")
        return self

    @property
    def extension(self) -> str:
        """The output file's extension, without its dot (a ladder's rungs are ``mp4``)."""
        if self.kind != "audio":
            return self.container
        if self.audio_codec == "mp3":
            return "mp3"
        if self.audio_codec == "aac":
            return "m4a"
        return "webm" if self.container == "webm" else "ogg"

    @property
    def encoders(self) -> tuple[str, ...]:
        """The FFmpeg encoders this profile needs."""
        audio = AUDIO_ENCODERS[self.audio_codec]
        if self.kind == "audio":
            return (audio,)
        return (VIDEO_ENCODERS[self.video_codec], audio)

    def video_rate(self, short_side: int) -> int:
        """A single conversion's video bit rate in kb/s: the one asked, else the default
        ladder's for that size scaled by the codec's efficiency."""
        if self.video_kbps:
            return self.video_kbps
        rung = next((r for r in DEFAULT_LADDER if r.height <= short_side), DEFAULT_LADDER[-1])
        return max(100, round(rung.video_kbps * _EFFICIENCY[self.video_codec]))


def _single(codec: VideoCodec, container: Container, audio: AudioCodec, text: str) -> Profile:
    return Profile(
        kind="single", video_codec=codec, container=container, audio_codec=audio, description=text
    )


def _audio(codec: AudioCodec, kbps: int, text: str) -> Profile:
    return Profile(kind="audio", audio_codec=codec, audio_kbps=kbps, description=text)


BUILTIN_PROFILES: Mapping[str, Profile] = {
    "default": Profile(rungs=DEFAULT_LADDER, description="Adaptive streaming ladder, H.264 (HLS)"),
    "hevc-ladder": Profile(
        video_codec="hevc",
        rungs=DEFAULT_LADDER[2:],
        description="Adaptive streaming ladder up to 1080p, HEVC (smaller files, newer players)",
    ),
    "mp4-h264": _single("h264", "mp4", "aac", "One MP4, H.264 + AAC, source size (plays anywhere)"),
    "mp4-hevc": _single("hevc", "mp4", "aac", "One MP4, HEVC + AAC, source size (Apple, Edge)"),
    "mp4-av1": _single("av1", "mp4", "aac", "One MP4, AV1 + AAC, source size (slow to make)"),
    "webm-vp9": _single("vp9", "webm", "opus", "One WebM, VP9 + Opus, source size (browsers)"),
    "audio-mp3": _audio("mp3", 192, "Audio only, MP3 192 kb/s"),
    "audio-aac": _audio("aac", 160, "Audio only, AAC 160 kb/s (.m4a)"),
    "audio-opus": _audio("opus", 128, "Audio only, Opus 128 kb/s (.ogg)"),
}


def _parse(name: str, raw: Any) -> Profile:
    if isinstance(raw, list):  # the old form: a list of rungs is a ladder
        rungs = msgspec.convert(raw, tuple[Rung, ...])
        return Profile(rungs=rungs, description=f"Adaptive ladder ({len(rungs)} rungs)")
    return msgspec.convert(raw, Profile)


def load_profiles(raw_json: str) -> dict[str, Profile]:
    """The built-in profiles plus any given as JSON (which may replace a built-in one)."""
    profiles = dict(BUILTIN_PROFILES)
    if raw_json.strip():
        extra = msgspec.json.decode(raw_json, type=dict[str, Any])
        for name, raw in extra.items():
            profiles[name] = _parse(name, raw).validate(name)
    return profiles


def missing_encoders(
    profiles: Mapping[str, Profile], have: Iterable[str]
) -> dict[str, tuple[str, ...]]:
    """Profile name -> the encoders it needs that are not in ``have`` (only those lacking any)."""
    available = frozenset(have)
    out: dict[str, tuple[str, ...]] = {}
    for name, profile in profiles.items():
        lacking = tuple(e for e in profile.encoders if e not in available)
        if lacking:
            out[name] = lacking
    return out
