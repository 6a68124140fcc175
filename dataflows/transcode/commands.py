"""FFmpeg command lines (pure): one decode split into several rungs, each written as one
fragmented MP4 (CMAF) with its growing byte-range playlist, the audio once; previews."""

from __future__ import annotations

from pathlib import Path

from core.events import Probe
from core.profiles import Profile
from dataflows.transcode.codecs import video_codec_args
from dataflows.transcode.ladder import PlannedRendition

__all__ = [
    "AUDIO_TRACK",
    "SEGMENT_SECONDS",
    "encode_command",
    "poster_command",
    "scaling_graph",
    "sprite_command",
    "track_name",
]

SEGMENT_SECONDS = 2
AUDIO_TRACK = "audio"  # the name of the job's one audio track (files audio.mp4, audio.m3u8)


def track_name(label: int) -> str:
    """A rung's track name: its files are ``{name}.mp4`` and ``{name}.m3u8``."""
    return f"{label}p"


def _cmaf_output(outdir: Path, name: str) -> list[str]:
    """FFmpeg's hls muxer writing one fragmented MP4 (init, then a ``moof``+``mdat`` per
    segment) and an EVENT playlist of byte ranges into it, rewritten as each segment completes,
    so the track is published while it encodes (``live.py``)."""
    return [
        "-f", "hls", "-hls_segment_type", "fmp4", "-hls_time", str(SEGMENT_SECONDS),
        "-hls_flags", "single_file+independent_segments", "-hls_playlist_type", "event",
        "-hls_segment_filename", str(outdir / f"{name}.mp4"), str(outdir / f"{name}.m3u8"),
    ]  # fmt: skip


def _video_codec_args(r: PlannedRendition, preset: str, gop: str) -> list[str]:
    """The video encoder of one rung (H.264 here; the one place a codec choice goes)."""
    maxrate, bufsize = f"{r.video_kbps * 107 // 100}k", f"{r.video_kbps * 3 // 2}k"
    return [
        "-c:v", "libx264", "-preset", preset, "-profile:v", "high", "-pix_fmt", "yuv420p",
        "-b:v", f"{r.video_kbps}k", "-maxrate", maxrate, "-bufsize", bufsize,
        "-g", gop, "-keyint_min", gop, "-sc_threshold", "0",
    ]  # fmt: skip


def _frame_rate(probe: Probe) -> float:
    return probe.fps if 1.0 <= probe.fps <= 120.0 else 30.0


def scaling_graph(renditions: list[PlannedRendition], head: str = "", cascade: bool = True) -> str:
    """The filter graph from the decoded source (``[0:v]``) to one output pad ``[v{i}]`` per
    rendition, in the order given.

    ``cascade``: each rung is scaled from the next larger one, not from the source, which cuts
    the scaling work of a 1080p ladder by a third (FFmpeg 5 runs the whole graph on one thread,
    so this is time on the critical path). ``cascade=False`` scales every rung from the source,
    as a hand-written ladder command does.
    """
    scales = [f"scale={r.width}:{r.height}:flags=bicubic,setsar=1" for r in renditions]
    if len(renditions) == 1:
        return f"[0:v]{head}{scales[0]}[v0]"
    if not cascade:
        branches = "".join(f"[s{i}]" for i in range(len(renditions)))
        each = ";".join(f"[s{i}]{scale}[v{i}]" for i, scale in enumerate(scales))
        return f"[0:v]{head}split={len(renditions)}{branches};{each}"
    largest_first = sorted(range(len(renditions)), key=lambda i: -renditions[i].height)
    chains, feed = [], f"[0:v]{head}"
    for step, i in enumerate(largest_first):
        tail = f"[v{i}]" if step == len(largest_first) - 1 else f",split=2[v{i}][c{i}]"
        chains.append(f"{feed}{scales[i]}{tail}")
        feed = f"[c{i}]"  # this rung's copy feeds the next smaller one
    return ";".join(chains)


def encode_command(
    ffmpeg: str,
    source: str,
    probe: Probe,
    renditions: list[PlannedRendition],
    outdir: Path,
    preset: str = "veryfast",
    cascade: bool = True,
    audio_kbps: int = 0,
    profile: Profile | None = None,
) -> list[str]:
    """Decode ``source`` once and encode every rendition to ``outdir/{label}p.mp4`` (video only,
    fragmented) and, when ``audio_kbps``, the source's first audio stream once to
    ``outdir/audio.mp4``: the job's one audio track, which every rung shares.

    Keyframes every ``SEGMENT_SECONDS`` (no scene-cut keyframes) so every rung cuts equal,
    aligned segments; a variable frame rate source is made constant at its average rate so audio
    and video stay in sync. ``cascade``: see :func:`scaling_graph`. ``profile``: the ladder's video
    codec (:func:`dataflows.transcode.codecs.video_codec_args`); none is H.264.
    """
    rate = _frame_rate(probe)
    gop = str(round(rate * SEGMENT_SECONDS))
    head = "fps=" + f"{rate:.3f}," if probe.variable_frame_rate else ""
    labels = [f"v{i}" for i in range(len(renditions))]
    graph = scaling_graph(renditions, head, cascade)
    argv = [
        ffmpeg, "-hide_banner", "-nostdin", "-y", "-v", "error", "-nostats",
        "-progress", "pipe:1", "-i", source, "-filter_complex", graph,
    ]  # fmt: skip
    for label, r in zip(labels, renditions, strict=True):
        # the ladder's video codec comes from its profile (H.264 when none is given)
        video = video_codec_args(profile, r, int(gop), preset) if profile else None
        argv += ["-map", f"[{label}]", *(video or _video_codec_args(r, preset, gop)), "-an"]
        argv += _cmaf_output(outdir, track_name(r.label))
    if audio_kbps:
        argv += ["-map", "0:a:0", "-vn", "-c:a", "aac", "-b:a", f"{audio_kbps}k", "-ac", "2"]
        argv += _cmaf_output(outdir, AUDIO_TRACK)
    return argv


def poster_command(ffmpeg: str, mp4: str | Path, at_seconds: float, out: Path) -> list[str]:
    """One frame at ``at_seconds`` as a JPEG, never wider than 1280 pixels (``-ss`` before
    ``-i`` seeks, so over HTTP only the bytes around that frame are read)."""
    return [
        ffmpeg, "-hide_banner", "-nostdin", "-y", "-v", "error", "-ss", f"{at_seconds:.3f}",
        "-i", str(mp4), "-frames:v", "1", "-vf", "scale='min(1280,iw)':-2", "-q:v", "3", str(out),
    ]  # fmt: skip


def sprite_command(
    ffmpeg: str, mp4: str | Path, interval: float, columns: int, rows: int, width: int, out: Path
) -> list[str]:
    """A sheet of thumbnails, one every ``interval`` seconds, ``columns`` x ``rows``."""
    return [
        ffmpeg, "-hide_banner", "-nostdin", "-y", "-v", "error", "-i", str(mp4),
        "-vf", f"fps=1/{interval:.3f},scale={width}:-2,tile={columns}x{rows}",
        "-frames:v", "1", "-q:v", "4", str(out),
    ]  # fmt: skip
