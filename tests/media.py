"""Test media made on the spot with ffmpeg's lavfi sources (no media files in git)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from connectors.ffmpeg import ffmpeg_binary


def raw_clip(path: Path, seconds: float = 4.0, size: str = "320x240", rate: int = 25) -> Path:
    """An uncompressed Matroska clip: large for its length (11 MB for 4 s), so chunking shows."""
    subprocess.run(
        [
            ffmpeg_binary(), "-v", "error", "-y", "-f", "lavfi",
            "-i", f"testsrc2=size={size}:rate={rate}", "-t", str(seconds),
            "-c:v", "rawvideo", "-pix_fmt", "yuv420p", str(path),
        ],
        check=True,
    )  # fmt: skip
    return path


def h264_clip(
    path: Path, seconds: float = 2.0, size: str = "320x240", rate: int = 25, audio: bool = True
) -> Path:
    """A small H.264 (+AAC) MP4."""
    audio_in = ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"] if audio else []
    audio_out = ["-c:a", "aac", "-shortest"] if audio else []
    subprocess.run(
        [
            ffmpeg_binary(), "-v", "error", "-y", "-f", "lavfi",
            "-i", f"testsrc2=size={size}:rate={rate}", *audio_in, "-t", str(seconds),
            "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", *audio_out, str(path),
        ],
        check=True,
    )  # fmt: skip
    return path


def remux(source: Path, target: Path, *options: str) -> bytes:
    """``source`` copied into ``target``'s container (``-c copy``) with ``options``, as bytes."""
    subprocess.run(
        [ffmpeg_binary(), "-v", "error", "-y", "-i", str(source), "-c", "copy", *options,
         str(target)],
        check=True,
    )  # fmt: skip
    return target.read_bytes()


def write_in_pieces(
    path: Path,
    data: bytes,
    pieces: int,
    pause: float,
    after_each: Callable[[], None] = lambda: None,
) -> None:
    """Write ``data`` to ``path`` as a recorder does: ``pieces`` flushed writes with a pause after
    each (``after_each`` runs between the write and the pause, e.g. to announce it)."""
    step = -(-len(data) // pieces)
    with path.open("wb") as handle:
        for start in range(0, len(data), step):
            handle.write(data[start : start + step])
            handle.flush()
            after_each()
            time.sleep(pause)


def cmaf_ladder(work: Path) -> Path:
    """A real ladder as the transcode flow lays it out: one fragmented MP4 per rung (two video
    rungs, the audio once in a track of its own), their HLS media playlists of byte ranges, the
    master playlist and the DASH manifest beside them, all written by FFmpeg's DASH muxer.

    Until the transcode flow writes manifests itself this stands in for its output (the DASH
    browser test, the bench's playable checks); then the flow's own can take its place."""
    out = work / "ladder"
    out.mkdir()
    subprocess.run(
        [
            ffmpeg_binary(), "-v", "error", "-y",
            "-f", "lavfi", "-i", "testsrc2=size=426x240:rate=25",
            "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", "8",
            "-map", "0:v", "-map", "0:v", "-map", "1:a",
            "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
            "-g", "25", "-keyint_min", "25", "-sc_threshold", "0",
            "-filter:v:1", "scale=-2:144", "-b:v:0", "400k", "-b:v:1", "150k", "-c:a", "aac",
            "-f", "dash", "-single_file", "1", "-single_file_name", "rung-$RepresentationID$.mp4",
            "-seg_duration", "1", "-use_timeline", "0",
            "-adaptation_sets", "id=0,streams=v id=1,streams=a",
            "-hls_playlist", "1", "-hls_master_name", "master.m3u8",
            str(out / "manifest.mpd"),
        ],
        check=True,
    )  # fmt: skip
    return out
