"""Turning a finished encode into objects: HLS remux, upload, master playlist, previews.

Keys come from :class:`core.layout.ObjectLayout`, so running a job twice overwrites the
same keys with the same content.
"""

from __future__ import annotations

import io
import json
import math
import mimetypes
import subprocess
import sys
from pathlib import Path

from minio import Minio
from minio.error import S3Error

from connectors.ffmpeg import ffmpeg_binary, ffprobe_binary, stderr_reason
from core.events import Rendition
from core.layout import ObjectLayout
from dataflows.transcode.commands import hls_command, poster_command, sprite_command
from dataflows.transcode.hls import MasterEntry, avc1_codec, master_playlist, sprite_vtt
from dataflows.transcode.ladder import PlannedRendition

__all__ = ["JOB_METADATA", "Previews", "RenditionStore", "preview_inputs"]

JOB_METADATA = "vidflow-job"  # user metadata (x-amz-meta-vidflow-job): the job that wrote it

SPRITE_COLUMNS = 10
SPRITE_WIDTH = 160
POSTER_MAX_RUNG = 720  # the poster is at most 1280 pixels wide


class Previews:
    """Keys of the poster, sprite and its WebVTT track ("" when not made) and what users should
    know about them."""

    def __init__(
        self, poster: str, sprite: str, vtt: str, warnings: list[str] | None = None
    ) -> None:
        self.poster, self.sprite, self.vtt = poster, sprite, vtt
        self.warnings = warnings or []


def _run(argv: list[str]) -> None:
    """Run an FFmpeg command; a failure raises with its last stderr line (scrubbed: an input may
    be a presigned URL), the whole stderr going to this process's stderr, the task's log."""
    done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=600)
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        reason = stderr_reason(done.stderr, f"exit code {done.returncode}")
        raise RuntimeError(f"{Path(argv[0]).name} failed: {reason}")


def _made(argv: list[str], out: Path) -> bool:
    """Run an FFmpeg command that writes ``out``; whether it did (FFmpeg exits 0 and writes
    nothing when a filter such as ``fps`` yields no frame, as for a one-frame clip)."""
    out.unlink(missing_ok=True)
    try:
        _run(argv)
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        sys.stderr.write(f"{out.name} not made: {exc}\n")
        return False
    if out.is_file() and out.stat().st_size > 0:
        return True
    sys.stderr.write(f"{out.name} not made: FFmpeg wrote no frame\n")
    return False


def _video_facts(mp4: Path) -> tuple[str, int, int, float]:
    """(H.264 profile, level, overall bit rate, duration in seconds) of an encoded file; the
    duration is compared with the source's (a short rendition means a truncated source)."""
    done = subprocess.run(
        [ffprobe_binary(), "-v", "error", "-select_streams", "v:0", "-show_entries",
         "stream=profile,level:format=bit_rate,duration", "-of", "json", str(mp4)],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    report = json.loads(done.stdout)
    stream = (report.get("streams") or [{}])[0]
    fmt = report.get("format", {})
    bit_rate = int(fmt.get("bit_rate") or 0)
    duration = float(fmt.get("duration") or 0.0)
    return str(stream.get("profile", "High")), int(stream.get("level") or 40), bit_rate, duration


def preview_inputs(widths: dict[int, int]) -> tuple[int, int]:
    """Which rungs (by label, from label -> width) the poster and the sprite are made from:
    the poster from the best rung up to 720p, the sprite from the smallest rung at least as
    wide as a thumbnail."""
    labels = sorted(widths)
    poster = max((label for label in labels if label <= POSTER_MAX_RUNG), default=labels[0])
    sprite = next((label for label in labels if widths[label] >= SPRITE_WIDTH), labels[-1])
    return poster, sprite


class RenditionStore:
    """Writes one video's outputs to the bucket."""

    def __init__(
        self, client: Minio, bucket: str, layout: ObjectLayout, video_id: str, job_id: str = ""
    ) -> None:
        self.client, self.bucket, self.layout, self.video_id = client, bucket, layout, video_id
        self.job_id = job_id
        self._meta: dict[str, str | list[str] | tuple[str]] | None = (
            {JOB_METADATA: job_id} if job_id else None
        )

    def _put_file(self, key: str, path: Path) -> None:
        content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        if path.suffix == ".m3u8":
            content_type = "application/vnd.apple.mpegurl"
        elif path.suffix == ".ts":
            content_type = "video/mp2t"
        self.client.fput_object(
            self.bucket, key, str(path), content_type=content_type, metadata=self._meta
        )

    def _put_text(self, key: str, text: str, content_type: str) -> None:
        body = text.encode()
        self.client.put_object(
            self.bucket, key, io.BytesIO(body), len(body), content_type=content_type,
            metadata=self._meta,
        )  # fmt: skip

    def publish(
        self, planned: PlannedRendition, workdir: Path
    ) -> tuple[Rendition, MasterEntry, float]:
        """Remux the rung's MP4 into HLS, upload both; return what the events and master need,
        and the rung's duration."""
        mp4 = workdir / f"{planned.label}p.mp4"
        hls_dir = workdir / f"hls-{planned.label}p"
        hls_dir.mkdir(exist_ok=True)
        playlist = hls_dir / "index.m3u8"
        _run(hls_command(ffmpeg_binary(), mp4, playlist))
        profile, level, bit_rate, duration = _video_facts(mp4)
        prefix = self.layout.hls_dir(self.video_id, planned.label)
        for item in sorted(hls_dir.iterdir()):
            self._put_file(f"{prefix}/{item.name}", item)
        key = self.layout.rendition(self.video_id, planned.label)
        self._put_file(key, mp4)
        codecs = avc1_codec(profile, level, planned.audio)
        bandwidth = max(bit_rate, 1) * 11 // 10  # headroom over the average, as players expect
        rendition = Rendition(
            height=planned.height, width=planned.width, key=key,
            hls=self.layout.hls_playlist(self.video_id, planned.label),
            bandwidth=bandwidth, codecs=codecs,
        )  # fmt: skip
        entry = MasterEntry(planned.label, planned.width, planned.height, bandwidth, codecs,
                            f"{planned.label}p/index.m3u8")  # fmt: skip
        return rendition, entry, duration

    def write_master(self, entries: list[MasterEntry]) -> str:
        """(Re)write the master playlist with every rung done so far."""
        key = self.layout.hls_master(self.video_id)
        self._put_text(key, master_playlist(entries), "application/vnd.apple.mpegurl")
        return key

    def previews(
        self,
        poster_from: str,
        sprite_from: str,
        duration: float,
        width: int,
        height: int,
        workdir: Path,
    ) -> Previews:
        """Poster at 10% of the video, a sprite of up to 100 thumbnails, and its WebVTT track.

        The inputs are URLs of renditions picked by :func:`preview_inputs`: decoding the top
        rung for 160-pixel thumbnails would cost as much as a decode of the source. Previews
        never fail a job whose renditions are made: a clip too short for a sprite (one frame,
        less than one thumbnail interval) gets a poster alone, a poster that cannot be made at
        10% is taken from the first frame, and failing that the job has none and says so. A
        failed upload still raises (the store is the problem, not the clip).
        """
        poster, sprite = workdir / "poster.jpg", workdir / "sprite.jpg"
        at = min(duration * 0.1, max(duration - 0.1, 0))
        made_poster = _made(poster_command(ffmpeg_binary(), poster_from, at, poster), poster)
        if not made_poster and at > 0:
            made_poster = _made(poster_command(ffmpeg_binary(), poster_from, 0.0, poster), poster)
        interval = max(1.0, duration / 100)
        count = max(1, math.ceil(duration / interval))
        rows = math.ceil(count / SPRITE_COLUMNS)
        made_sprite = _made(
            sprite_command(
                ffmpeg_binary(), sprite_from, interval, SPRITE_COLUMNS, rows, SPRITE_WIDTH, sprite
            ),
            sprite,
        )
        keys = Previews("", "", "")
        if made_poster:
            keys.poster = self.layout.poster(self.video_id)
            self._put_file(keys.poster, poster)
        else:
            keys.warnings.append("no poster could be made from the renditions")
        if made_sprite:
            keys.sprite = self.layout.sprite(self.video_id)
            keys.vtt = self.layout.sprite_vtt(self.video_id)
            self._put_file(keys.sprite, sprite)
            thumb_h = max(2, round(SPRITE_WIDTH * height / width / 2) * 2)
            vtt = sprite_vtt(
                duration, interval, SPRITE_COLUMNS, SPRITE_WIDTH, thumb_h, "sprite.jpg"
            )
            self._put_text(keys.vtt, vtt, "text/vtt")
        return keys

    def remove_written_by(self, job_id: str, labels: list[int]) -> list[str]:
        """Delete what job ``job_id`` uploaded for the rungs ``labels``, and nothing else.

        Keys are per video, so a cancelled reprocess shares them with the job before it: an
        object is removed only when its metadata names ``job_id`` (an upload interrupted before
        the store committed it left the earlier job's object, which stays). The removed keys.
        """
        removed = []
        for label in labels:
            keys = [self.layout.rendition(self.video_id, label)]
            prefix = self.layout.hls_dir(self.video_id, label) + "/"
            keys += [
                o.object_name or ""
                for o in self.client.list_objects(self.bucket, prefix, recursive=True)
            ]
            for key in keys:
                try:
                    meta = self.client.stat_object(self.bucket, key).metadata
                except S3Error as exc:
                    if exc.code in ("NoSuchKey", "NoSuchObject"):
                        continue
                    raise
                if meta is not None and meta.get(f"x-amz-meta-{JOB_METADATA}") == job_id:
                    self.client.remove_object(self.bucket, key)
                    removed.append(key)
        return removed
