"""What chunk-level dedup of compressed video would save: the share of one file's 10 MiB chunks
(fixed-size, as ingest cuts them) whose SHA-256 another file's chunks already have.

Makes one scene (FFmpeg's ``testsrc2`` with film grain, 720p, H.264) and files a user might send
twice: a byte-identical copy, a re-encode of the same scene (the same settings again, and one
CRF step apart), a remux into another container, the same file with one metadata tag changed
(its index at the end, as FFmpeg writes it, and at the front, "faststart", as the web wants it),
and the file cut at a keyframe half-way. Prints one JSON line per pair. Needs ``ffmpeg`` only.
Usage: ``python bench/chunk_dedup.py [--seconds 40]``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import tempfile
from pathlib import Path

CHUNK = 10 * 1024 * 1024


def chunk_digests(path: Path) -> list[str]:
    """SHA-256 of each fixed-size chunk of ``path``, in order."""
    digests = []
    with path.open("rb") as handle:
        while block := handle.read(CHUNK):
            digests.append(hashlib.sha256(block).hexdigest())
    return digests


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-y", *args], check=True)


def encode(out: Path, seconds: int, crf: int) -> None:
    scene = f"testsrc2=size=1280x720:rate=30:duration={seconds},noise=alls=12:allf=t"
    ffmpeg("-f", "lavfi", "-i", scene, "-c:v", "libx264", "-preset", "ultrafast", "-crf",
           str(crf), "-pix_fmt", "yuv420p", str(out))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        d = Path(scratch)
        original = d / "original.mp4"
        encode(original, args.seconds, 18)
        shutil.copyfile(original, d / "copy.mp4")
        encode(d / "same-settings.mp4", args.seconds, 18)
        encode(d / "crf19.mp4", args.seconds, 19)
        ffmpeg("-i", str(original), "-c", "copy", str(d / "remux.mkv"))
        ffmpeg("-i", str(original), "-c", "copy", "-metadata", "title=holiday", str(d / "tag.mp4"))
        half = str(args.seconds // 2)
        ffmpeg("-ss", half, "-i", str(original), "-c", "copy", str(d / "cut.mp4"))
        faststart = ("-c", "copy", "-movflags", "+faststart")
        ffmpeg("-i", str(original), *faststart, str(d / "faststart.mp4"))
        ffmpeg("-i", str(original), *faststart, "-metadata", "title=holiday",
               str(d / "faststart-tag.mp4"))  # fmt: skip
        pairs = [
            ("original.mp4", "copy.mp4"), ("original.mp4", "same-settings.mp4"),
            ("original.mp4", "crf19.mp4"), ("original.mp4", "remux.mkv"),
            ("original.mp4", "tag.mp4"), ("faststart.mp4", "faststart-tag.mp4"),
            ("original.mp4", "cut.mp4"),
        ]  # fmt: skip
        for first, other in pairs:
            known = set(chunk_digests(d / first))
            size = (d / first).stat().st_size
            digests = chunk_digests(d / other)
            shared = sum(digest in known for digest in digests)
            print(json.dumps({
                "bench": "chunk_dedup", "first": first, "first_bytes": size, "other": other,
                "other_bytes": (d / other).stat().st_size, "chunks": len(digests),
                "shared_chunks": shared, "shared_fraction": round(shared / len(digests), 3),
            }), flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
