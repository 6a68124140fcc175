"""Conversion profiles (``single`` and ``audio``): one FFmpeg run, one output object.

A ladder makes rungs and HLS; a conversion makes one file, ``renditions/{video}/{profile}.{ext}``
(:meth:`core.layout.ObjectLayout.converted`), at the source's size or the asked short side, or
the audio alone. It rides the ladder's steps as a one-rendition plan (label: its short side, 0
for audio) so planning, retries, cancels and the job's end stay one code path; this module holds
what differs: the plan, the command and the upload.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from minio import Minio

from connectors.ffmpeg import ffprobe_binary
from core.events import Probe, Rendition
from core.layout import ObjectLayout
from core.profiles import Profile
from dataflows.transcode.codecs import audio_codec_args, video_codec_args
from dataflows.transcode.ladder import PlannedRendition, display_size, even

__all__ = [
    "CONTENT_TYPES",
    "convert_command",
    "output_file",
    "plan_conversion",
    "publish_conversion",
]

CONTENT_TYPES = {
    "mp4": "video/mp4",
    "webm": "video/webm",
    "mp3": "audio/mpeg",
    "m4a": "audio/mp4",
    "ogg": "audio/ogg",
}
_AUDIO_WEBM = "audio/webm"
GOP_SECONDS = 2


def plan_conversion(probe: Probe, profile: Profile) -> PlannedRendition:
    """The one output of ``profile`` for ``probe`` (``ValueError``: the source cannot make it).

    Video keeps the display aspect at even sizes and is never scaled up; audio-only has no
    picture (label, width and height 0)."""
    if profile.kind == "audio":
        if not probe.has_audio:
            raise ValueError("the source has no audio stream for an audio-only profile")
        return PlannedRendition(0, 0, 0, 0, profile.audio_kbps, True)
    width, height = display_size(probe)
    short = min(width, height)
    if profile.height and profile.height < short:
        scale = profile.height / short
        width, height = even(width * scale), even(height * scale)
    else:
        width, height = even(width), even(height)
    label = min(width, height)
    kbps = profile.video_rate(label)
    return PlannedRendition(label, width, height, kbps, profile.audio_kbps, probe.has_audio)


def output_file(workdir: Path, profile: Profile) -> Path:
    """Where FFmpeg writes the output locally."""
    return workdir / f"output.{profile.extension}"


def convert_command(
    ffmpeg: str,
    source: str,
    probe: Probe,
    planned: PlannedRendition,
    profile: Profile,
    workdir: Path,
    preset: str = "veryfast",
) -> list[str]:
    """One decode, one encode to :func:`output_file` (progress on stdout, as a ladder's)."""
    argv = [
        ffmpeg, "-hide_banner", "-nostdin", "-y", "-v", "error", "-nostats",
        "-progress", "pipe:1", "-i", source,
    ]  # fmt: skip
    audio = audio_codec_args(profile.audio_codec, planned.audio_kbps)
    if profile.kind == "audio":
        argv += ["-map", "0:a:0", "-vn", *audio]
    else:
        rate = probe.fps if 1.0 <= probe.fps <= 120.0 else 30.0
        head = f"fps={rate:.3f}," if probe.variable_frame_rate else ""
        scale = f"{head}scale={planned.width}:{planned.height}:flags=bicubic,setsar=1"
        gop = round(rate * GOP_SECONDS)
        argv += ["-map", "0:v:0", "-vf", scale, *video_codec_args(profile, planned, gop, preset)]
        argv += ["-map", "0:a:0", *audio] if planned.audio else ["-an"]
    if profile.extension in ("mp4", "m4a"):
        argv += ["-movflags", "+faststart"]
    return [*argv, str(output_file(workdir, profile))]


def _facts(path: Path) -> tuple[str, int, float]:
    """(codec names, overall bit rate, duration) of the output by ffprobe."""
    done = subprocess.run(
        [ffprobe_binary(), "-v", "error", "-show_entries", "stream=codec_name:format=bit_rate,"
         "duration", "-of", "json", str(path)],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    report = json.loads(done.stdout)
    codecs = ",".join(str(s.get("codec_name", "")) for s in report.get("streams", []))
    fmt = report.get("format", {})
    return codecs, int(fmt.get("bit_rate") or 0), float(fmt.get("duration") or 0.0)


def publish_conversion(
    client: Minio,
    bucket: str,
    layout: ObjectLayout,
    video_id: str,
    profile_name: str,
    profile: Profile,
    planned: PlannedRendition,
    workdir: Path,
    metadata: dict[str, str | list[str] | tuple[str]] | None,
) -> tuple[Rendition, float]:
    """Upload the output under the layout; its :class:`Rendition` (no HLS) and duration."""
    path = output_file(workdir, profile)
    codecs, bit_rate, duration = _facts(path)
    key = layout.converted(video_id, profile_name, profile.extension)
    content_type = CONTENT_TYPES[profile.extension]
    if profile.kind == "audio" and profile.extension == "webm":
        content_type = _AUDIO_WEBM
    client.fput_object(bucket, key, str(path), content_type=content_type, metadata=metadata)
    rendition = Rendition(
        height=planned.height, width=planned.width, key=key, hls="", bandwidth=bit_rate,
        codecs=codecs,
    )  # fmt: skip
    return rendition, duration
