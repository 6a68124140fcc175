"""FFmpeg command lines (pure): one decode split into several rungs, HLS remux, previews."""

from __future__ import annotations

from pathlib import Path

from dataflows.transcode.ladder import PlannedRendition
from vidflow.events import Probe

__all__ = [
    "SEGMENT_SECONDS",
    "encode_command",
    "hls_command",
    "poster_command",
    "sprite_command",
]

SEGMENT_SECONDS = 2


def _frame_rate(probe: Probe) -> float:
    return probe.fps if 1.0 <= probe.fps <= 120.0 else 30.0


def encode_command(
    ffmpeg: str,
    source: str,
    probe: Probe,
    renditions: list[PlannedRendition],
    outdir: Path,
    preset: str = "veryfast",
) -> list[str]:
    """Decode ``source`` once and encode every rendition to ``outdir/{label}p.mp4``.

    Keyframes every ``SEGMENT_SECONDS`` (no scene-cut keyframes) so the HLS remux cuts equal
    segments; a variable frame rate source is made constant at its average rate so audio and
    video stay in sync.
    """
    rate = _frame_rate(probe)
    gop = str(round(rate * SEGMENT_SECONDS))
    head = "fps=" + f"{rate:.3f}," if probe.variable_frame_rate else ""
    labels = [f"v{i}" for i in range(len(renditions))]
    if len(renditions) == 1:
        r = renditions[0]
        graph = f"[0:v]{head}scale={r.width}:{r.height}:flags=bicubic,setsar=1[v0]"
    else:
        branches = "".join(f"[s{i}]" for i in range(len(renditions)))
        scales = ";".join(
            f"[s{i}]scale={r.width}:{r.height}:flags=bicubic,setsar=1[{labels[i]}]"
            for i, r in enumerate(renditions)
        )
        graph = f"[0:v]{head}split={len(renditions)}{branches};{scales}"
    argv = [
        ffmpeg, "-hide_banner", "-nostdin", "-y", "-v", "error", "-nostats",
        "-progress", "pipe:1", "-i", source, "-filter_complex", graph,
    ]  # fmt: skip
    for label, r in zip(labels, renditions, strict=True):
        maxrate, bufsize = f"{r.video_kbps * 107 // 100}k", f"{r.video_kbps * 3 // 2}k"
        argv += [
            "-map", f"[{label}]", "-c:v", "libx264", "-preset", preset, "-profile:v", "high",
            "-pix_fmt", "yuv420p", "-b:v", f"{r.video_kbps}k", "-maxrate", maxrate,
            "-bufsize", bufsize, "-g", gop, "-keyint_min", gop, "-sc_threshold", "0",
        ]  # fmt: skip
        if r.audio:
            argv += ["-map", "0:a:0", "-c:a", "aac", "-b:a", f"{r.audio_kbps}k", "-ac", "2"]
        else:
            argv += ["-an"]
        argv += ["-movflags", "+faststart", str(outdir / f"{r.label}p.mp4")]
    return argv


def hls_command(ffmpeg: str, mp4: Path, playlist: Path) -> list[str]:
    """Remux a finished MP4 into HLS segments and a media playlist (no re-encode)."""
    return [
        ffmpeg, "-hide_banner", "-nostdin", "-y", "-v", "error", "-i", str(mp4), "-c", "copy",
        "-f", "hls", "-hls_time", str(SEGMENT_SECONDS), "-hls_playlist_type", "vod",
        "-hls_segment_filename", str(playlist.parent / "segment_%05d.ts"), str(playlist),
    ]  # fmt: skip


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
