"""Turning a finished encode into objects: each track's one MP4 and playlist, the master
playlist and MPD, previews.

Keys come from :class:`core.layout.ObjectLayout`, so running a job twice overwrites the
same keys with the same content.
"""

from __future__ import annotations

import io
import math
import mimetypes
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from minio import Minio
from minio.deleteobjects import DeleteObject
from minio.error import S3Error

from connectors.ffmpeg import ffmpeg_binary, stderr_reason
from connectors.storage import read_object
from core.events import Rendition
from core.layout import ObjectLayout
from dataflows.transcode.commands import (
    AUDIO_TRACK,
    poster_command,
    sprite_command,
    track_name,
)
from dataflows.transcode.dash import DashTrack, dash_manifest
from dataflows.transcode.hls import AUDIO_CODEC, MasterEntry, master_playlist, sprite_vtt
from dataflows.transcode.ladder import PlannedRendition
from dataflows.transcode.packaging import (
    Track,
    byterange_playlist,
    parse_media_playlist,
    peak_bandwidth,
    video_codec_from_init,
)

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
        self.client.fput_object(
            self.bucket, key, str(path), content_type=content_type, metadata=self._meta
        )

    def put_text(self, key: str, text: str, content_type: str) -> None:
        self.put_bytes(key, text.encode(), content_type)

    def put_bytes(self, key: str, body: bytes, content_type: str) -> None:
        self.client.put_object(
            self.bucket, key, io.BytesIO(body), len(body), content_type=content_type,
            metadata=self._meta,
        )  # fmt: skip

    def track_keys(self, name: str) -> tuple[str, str]:
        """(MP4, media playlist) keys of a track by name (``720p`` or ``audio``)."""
        if name == AUDIO_TRACK:
            return self.layout.audio(self.video_id), self.layout.audio_playlist(self.video_id)
        label = int(name.removesuffix("p"))
        return self.layout.rendition(self.video_id, label), self.layout.hls_playlist(
            self.video_id, label
        )

    def _publish_track(self, name: str, workdir: Path) -> tuple[Track, str]:
        """Upload a finished track's MP4, then switch its playlist to byte ranges into it, then
        remove its temporaries (the live fragments); the track and its codec string."""
        text = (workdir / f"{name}.m3u8").read_text()
        track = parse_media_playlist(text)
        if track is None or not track.segments:
            raise RuntimeError(f"FFmpeg wrote no segment of {name}")
        track = Track(track.init_length, track.segments, ended=True)
        mp4 = workdir / f"{name}.mp4"
        with mp4.open("rb") as f:
            init = f.read(track.init_length)
        codec = AUDIO_CODEC if name == AUDIO_TRACK else video_codec_from_init(init)
        key, playlist = self.track_keys(name)
        self._put_file(key, mp4)
        self.put_text(
            playlist, byterange_playlist(track, key.rsplit("/", 1)[1]),
            "application/vnd.apple.mpegurl",
        )  # fmt: skip
        self.remove_live(name)
        return track, codec

    def written_by(self, key: str) -> str | None:
        """The job that wrote ``key`` ("" when unknown), None when there is no such object."""
        try:
            meta = self.client.stat_object(self.bucket, key).metadata
        except S3Error as exc:
            if exc.code in ("NoSuchKey", "NoSuchObject"):
                return None
            raise
        return (meta or {}).get(f"x-amz-meta-{JOB_METADATA}", "")

    def remove_live(self, name: str) -> list[str]:
        """Delete the temporary fragments of a track (the live playlist's objects) in one
        request (a DELETE each took a second of a job's end for a 60 s ladder)."""
        prefix = self.layout.live_dir(self.video_id, name) + "/"
        keys = [o.object_name or "" for o in self.client.list_objects(self.bucket, prefix)]
        failed = [
            f"{e.name}: {e.code}"
            for e in self.client.remove_objects(self.bucket, [DeleteObject(k) for k in keys])
        ]  # the errors come lazily: iterating sends the request
        if failed:
            raise RuntimeError(f"temporaries of {name} not removed: {failed[:3]}")
        return keys

    def publish(
        self, planned: PlannedRendition, workdir: Path
    ) -> tuple[Rendition, MasterEntry, float]:
        """Upload a finished rung (its one fragmented MP4 and byte-range playlist); what the
        events and master need, and the rung's duration (from its segments)."""
        name = track_name(planned.label)
        track, codec = self._publish_track(name, workdir)
        bandwidth = peak_bandwidth(track)
        key, playlist = self.track_keys(name)
        rendition = Rendition(
            height=planned.height, width=planned.width, key=key, hls=playlist,
            bandwidth=bandwidth, codecs=codec,
        )  # fmt: skip
        entry = MasterEntry(
            planned.label, planned.width, planned.height, bandwidth, codec,
            playlist.rsplit("/", 1)[1], media=key.rsplit("/", 1)[1],
        )  # fmt: skip
        return rendition, entry, track.duration

    def publish_audio(self, workdir: Path) -> MasterEntry:
        """Upload the job's one audio track; its master entry (label 0, kind audio)."""
        track, codec = self._publish_track(AUDIO_TRACK, workdir)
        key, playlist = self.track_keys(AUDIO_TRACK)
        return MasterEntry(
            0, 0, 0, peak_bandwidth(track), codec, playlist.rsplit("/", 1)[1],
            kind="audio", media=key.rsplit("/", 1)[1],
        )  # fmt: skip

    def _stored_track(self, entry: MasterEntry) -> Track | None:
        """A whole track as its stored playlist lists it (None: still live, or not there)."""
        key = f"{self.layout.hls_master(self.video_id).rsplit('/', 1)[0]}/{entry.uri}"
        data = read_object(self.client, self.bucket, key)
        if data is None:
            return None
        track = parse_media_playlist(data.decode("utf-8", "replace"))
        return track if track is not None and track.ended else None

    def write_master(self, entries: list[MasterEntry]) -> str:
        """(Re)write the master playlist with every track up so far (whole or still growing),
        then the MPD with every whole one; the master's key."""
        key = self.layout.hls_master(self.video_id)
        self.put_text(key, master_playlist(entries), "application/vnd.apple.mpegurl")
        whole = []
        for entry in entries:
            track = None if entry.live or not entry.media else self._stored_track(entry)
            if track is not None:
                whole.append(DashTrack(entry, track))
        if any(t.entry.kind != "audio" for t in whole):
            self.put_text(
                self.layout.dash_manifest(self.video_id), dash_manifest(whole),
                "application/dash+xml",
            )  # fmt: skip
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
        interval = max(1.0, duration / 100)
        count = max(1, math.ceil(duration / interval))
        rows = math.ceil(count / SPRITE_COLUMNS)
        sprite_argv = sprite_command(
            ffmpeg_binary(), sprite_from, interval, SPRITE_COLUMNS, rows, SPRITE_WIDTH, sprite
        )
        # side by side: the job's encodes are done, and both are on the way to job.completed
        with ThreadPoolExecutor(max_workers=2) as pool:
            sprite_made = pool.submit(_made, sprite_argv, sprite)
            made_poster = _made(poster_command(ffmpeg_binary(), poster_from, at, poster), poster)
            if not made_poster and at > 0:
                made_poster = _made(
                    poster_command(ffmpeg_binary(), poster_from, 0.0, poster), poster
                )
            made_sprite = sprite_made.result()
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
            self.put_text(keys.vtt, vtt, "text/vtt")
        return keys

    def remove_written_by(self, job_id: str, labels: list[int], audio: bool = False) -> list[str]:
        """Delete what job ``job_id`` uploaded for the rungs ``labels`` (and the audio track, and
        the master playlist and MPD it wrote while its tracks were live), and nothing else.

        Keys are per video, so a cancelled reprocess shares them with the job before it: an
        object is removed only when its metadata names ``job_id`` (an upload interrupted before
        the store committed it left the earlier job's object, which stays). The removed keys.
        """
        names = [track_name(label) for label in labels] + ([AUDIO_TRACK] if audio else [])
        keys = [self.layout.hls_master(self.video_id), self.layout.dash_manifest(self.video_id)]
        for name in names:
            keys += self.track_keys(name)
            prefixes = [self.layout.live_dir(self.video_id, name) + "/"]
            if name != AUDIO_TRACK:
                prefixes.append(self.layout.legacy_hls_dir(self.video_id, int(name[:-1])) + "/")
            for prefix in prefixes:
                keys += [
                    o.object_name or ""
                    for o in self.client.list_objects(self.bucket, prefix, recursive=True)
                ]
        return self.remove_if_written_by(keys, job_id)

    def remove_if_written_by(self, keys: list[str], job_id: str) -> list[str]:
        """Delete each of ``keys`` whose metadata names job ``job_id`` as its writer (never one
        an earlier job left); the removed keys."""
        removed = []
        for key in dict.fromkeys(keys):
            if self.written_by(key) == job_id:
                self.client.remove_object(self.bucket, key)
                removed.append(key)
        return removed
