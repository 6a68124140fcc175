"""FFmpeg and ffprobe: finding the binaries, what encoders FFmpeg has, what a source is."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterable, Mapping
from fractions import Fraction
from functools import cache
from typing import Any

from core.errors import scrub
from core.events import Probe
from core.profiles import BUILTIN_PROFILES, Profile, missing_encoders

__all__ = [
    "FFmpegMissing",
    "ProbeError",
    "ProfileUnsupported",
    "available_encoders",
    "ffmpeg_binary",
    "ffprobe_binary",
    "parse_encoders",
    "parse_probe",
    "probe",
    "stderr_reason",
    "usable_profiles",
]

PROBE_TIMEOUT = 120.0
_CONTEXT_TAG = re.compile(r"^\[[^\]]* @ 0x[0-9a-f]+\]\s*")


class FFmpegMissing(RuntimeError):
    """ffmpeg/ffprobe is not installed."""


class ProbeError(ValueError):
    """The input is not a video vidflow can transcode; the text is for people."""


class ProfileUnsupported(ValueError):
    """A configured profile needs an encoder the installed FFmpeg lacks."""


def _binary(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise FFmpegMissing(
            f"{name} not found on PATH: run `vidflow stack install` (apt-get install ffmpeg)"
        )
    return found


def ffmpeg_binary() -> str:
    """Path of ``ffmpeg``."""
    return _binary("ffmpeg")


def ffprobe_binary() -> str:
    """Path of ``ffprobe``."""
    return _binary("ffprobe")


def stderr_reason(stderr: str, fallback: str) -> str:
    """The last line of FFmpeg's or ffprobe's error output as a public reason: FFmpeg names its
    input in its errors, and the input is a presigned URL (credentials in its query string), so
    the line is scrubbed (:func:`core.errors.scrub`) and its ``[demuxer @ 0x…]`` tag dropped.
    """
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    text = scrub(_CONTEXT_TAG.sub("", lines[-1])) if lines else ""
    return text or fallback


def _rate(value: str | None) -> float:
    if not value or value in {"0/0", "N/A"}:
        return 0.0
    try:
        return float(Fraction(value))
    except (ValueError, ZeroDivisionError):
        return 0.0


def _rotation(stream: dict[str, Any]) -> int:
    """Rotation in degrees, from the display matrix side data or the legacy ``rotate`` tag."""
    for side in stream.get("side_data_list", []):
        if "rotation" in side:
            return round(float(side["rotation"])) % 360
    tag = stream.get("tags", {}).get("rotate")
    return int(tag) % 360 if tag else 0


def parse_probe(report: dict[str, Any]) -> Probe:
    """Turn ``ffprobe -show_format -show_streams -of json`` output into a :class:`Probe`."""
    streams: list[dict[str, Any]] = report.get("streams", [])
    video = next(
        (
            s
            for s in streams
            if s.get("codec_type") == "video"
            and not s.get("disposition", {}).get("attached_pic", 0)
        ),
        None,
    )
    if video is None:
        raise ProbeError("no video stream: the file is not a video")
    width, height = int(video.get("width") or 0), int(video.get("height") or 0)
    if width <= 0 or height <= 0:
        raise ProbeError("the video stream has no picture size: the file is corrupt or truncated")
    audio = next((s for s in streams if s.get("codec_type") == "audio"), None)
    fmt: dict[str, Any] = report.get("format", {})
    duration = float(fmt.get("duration") or video.get("duration") or 0.0)
    if duration <= 0:
        raise ProbeError("the video has no duration: the file is truncated or not seekable")
    avg, real = _rate(video.get("avg_frame_rate")), _rate(video.get("r_frame_rate"))
    return Probe(
        duration=duration,
        width=width,
        height=height,
        rotation=_rotation(video),
        fps=avg or real,
        bit_rate=int(fmt.get("bit_rate") or video.get("bit_rate") or 0),
        video_codec=str(video.get("codec_name", "")),
        audio_codec=str(audio["codec_name"]) if audio and audio.get("codec_name") else None,
        has_audio=audio is not None,
        format_name=str(fmt.get("format_name", "")),
        variable_frame_rate=bool(avg and real and abs(avg - real) > 0.01),
    )


def probe(source: str, timeout: float = PROBE_TIMEOUT) -> Probe:
    """Probe a path or URL; any reason it cannot be a video becomes a :class:`ProbeError`."""
    command = [
        ffprobe_binary(),
        "-v", "error",
        "-print_format", "json",
        "-show_format",
        "-show_streams",
        source,
    ]  # fmt: skip
    try:
        done = subprocess.run(command, capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise ProbeError(f"ffprobe did not finish within {timeout:.0f}s") from None
    if done.returncode != 0:
        # ffprobe starts its error with the input, a presigned URL with credentials: never shown
        stderr = done.stderr.decode("utf-8", "replace").replace(source, "the input")
        reason = stderr_reason(stderr, f"exit code {done.returncode}")
        raise ProbeError(f"not a readable video: {reason}")
    try:
        report = json.loads(done.stdout or b"{}")
    except json.JSONDecodeError as exc:
        raise ProbeError(f"ffprobe printed no report: {exc}") from None
    return parse_probe(report)


_ENCODER_LINE = re.compile(r"^\s*[VAS][.A-Z]{5}\s+(\S+)\s")


def parse_encoders(listing: str) -> frozenset[str]:
    """Encoder names from ``ffmpeg -hide_banner -encoders`` (lines such as
    `` V....D libx264  libx264 H.264 ...``; the legend above the ``------`` line is skipped)."""
    _, _, table = listing.partition("------")
    return frozenset(m.group(1) for line in table.splitlines() if (m := _ENCODER_LINE.match(line)))


@cache
def available_encoders() -> frozenset[str]:
    """The installed FFmpeg's encoders, asked once per process."""
    done = subprocess.run(
        [ffmpeg_binary(), "-hide_banner", "-encoders"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return parse_encoders(done.stdout)


def usable_profiles(
    profiles: Mapping[str, Profile], have: Iterable[str] | None = None
) -> dict[str, Profile]:
    """``profiles`` the installed FFmpeg (or the encoders ``have``) can make.

    A configured profile (``VIDFLOW_TRANSCODE_PROFILES_JSON``) it cannot make is refused: the
    operator asked for it, so the process stops at load with the reason. A built-in one is left
    out (it is not offered), so a build without, say, SVT-AV1 still runs everything else.
    """
    lacking = missing_encoders(profiles, available_encoders() if have is None else have)
    configured = {n: e for n, e in lacking.items() if profiles[n] is not BUILTIN_PROFILES.get(n)}
    if configured:
        named = "; ".join(f"{n} needs {', '.join(e)}" for n, e in sorted(configured.items()))
        raise ProfileUnsupported(
            f"VIDFLOW_TRANSCODE_PROFILES_JSON: the installed FFmpeg cannot make {named} "
            "(install an FFmpeg built with those encoders, or drop the profile)"
        )
    return {n: p for n, p in profiles.items() if n not in lacking}
