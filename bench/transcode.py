"""Transcode: the flow against hand-written FFmpeg references measured in the same run, how soon
a video plays, what it stores, and where its time goes.

Clips: generated 1080p30 H.264 + AAC, ``--seconds`` (60) and ``--long-seconds`` (300; 0 skips
it), through the default profile. One JSON line per figure (issue 12's targets in ``target``):

- ``reference_single_decode_seconds``: one ``ffmpeg`` making every rung from one decode, each
  scaled from the source, as a hand-written ladder command does (the reference);
  ``naive_one_ffmpeg_per_rung_seconds``: one ``ffmpeg`` per rung in sequence;
  ``flow_command_bare_seconds``: the flow's own command run bare, outside the flow. Each
  encodes the job's one audio track too (once), as the flow does: the same work.
- ``flow_requested_to_completed_seconds`` and its ratios to the three above
  (``flow_vs_reference`` ≤ 1.10, ``flow_vs_its_bare_command`` ≤ 1.10).
- ``first_playable_seconds`` for each clip (≤ 5): from producing ``transcode.requested`` until
  the master playlist in the bucket names a media playlist with at least one segment whose bytes
  can be fetched (and its audio group's too), polled every ~0.1 s as a player would read it,
  for the segment-per-file layout and the byte-range one alike (``bench/playable.py``);
  ``first_playable_dash_seconds`` when the video has a DASH manifest (looked at every ~1 s
  once HLS plays: the bench's reads take CPU from the flow it measures).
- ``stored_per_encoded_byte`` (≤ 1.02): every byte under the video's ``renditions/`` and
  ``hls/`` prefixes per byte of one copy of each rung's encoded media (``bench/figures.py``).
- ``cpu_<group>_seconds`` (``bench/cpu.py``): CPU seconds, from the request to the job's end, of
  the flow's FFmpeg, its Python children (by task), the flow process and the object store;
  ``flow_command_bare_cpu_seconds`` the bare command's. They explain the ratio to it.
- ``phase_<name>_seconds``: request → first ``unit.started``, each rung's encode, last rung →
  ``job.completed``, and the flow's own timings from its status events (``bench/figures.py``):
  ``phase_flow_<h>p_<phase>_seconds`` per rung (its unit's queued, first_segment, encode,
  publish, publish_wall, and child_startup = publish_wall - publish), ``phase_flow_previews``.

The long clip is measured to first playable only: then the bench sends ``transcode.cancel``
for it and waits for ``job.cancelled``, since the rest of its encode would hold the machine
for minutes and measure nothing asked for; ``cancel_to_cancelled_seconds`` (≤ 2) is how long
that took. The short clip runs to the end.

Needs the local stack (``vidflow stack up``).
Usage: ``python bench/transcode.py [--seconds 60] [--long-seconds 300] [--bare-only]``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import posixpath
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import msgspec
from minio import Minio
from minio.error import S3Error

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.cpu import CpuSampler, children_cpu_seconds
from bench.figures import encoded_bytes, phases, stored_per_encoded
from bench.playable import Piece, dash_playable, hls_playable
from connectors.ffmpeg import ffmpeg_binary, probe
from connectors.kafka import flush_or_raise, make_producer, produce_event
from connectors.storage import make_client
from core import events as ev
from core.layout import ObjectLayout
from core.profiles import DEFAULT_LADDER
from core.settings import Settings, load_settings
from dataflows.transcode.commands import encode_command
from dataflows.transcode.ladder import plan_ladder
from tests.flows import FlowProcess, TopicReader
from tests.isolation import isolated_copy, remove_isolated
from vidflow.stack import ensure_up

FINISHED = (ev.JobCompleted, ev.JobFailed, ev.JobCancelled)


def emit(figure: str, value: float, unit: str, **extra: object) -> None:
    line = {"bench": "transcode", "figure": figure, "value": round(value, 3), "unit": unit, **extra}
    print(json.dumps(line), flush=True)


def timed(argv: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True)
    return time.perf_counter() - started


def timed_cpu(argv: list[str]) -> tuple[float, float]:
    """Wall and CPU seconds of one run of ``argv``."""
    cpu = children_cpu_seconds()
    wall = timed(argv)
    return wall, children_cpu_seconds() - cpu


def make_clip(path: Path, seconds: int) -> Path:
    """A 1080p30 H.264 + AAC clip of ``seconds``, as a camera would hand it over."""
    subprocess.run(
        [ffmpeg_binary(), "-v", "error", "-y",
         "-f", "lavfi", "-i", "testsrc2=size=1920x1080:rate=30",
         "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", str(seconds),
         "-c:v", "libx264", "-preset", "veryfast", "-b:v", "8M", "-c:a", "aac", "-shortest",
         str(path)],
        check=True,
    )  # fmt: skip
    return path


class BucketStore:
    """The bucket as a player reads it (the :class:`bench.playable.Store` of the bench)."""

    def __init__(self, client: Minio, bucket: str) -> None:
        self._client, self._bucket = client, bucket

    def text(self, key: str) -> str | None:
        try:
            response = self._client.get_object(self._bucket, key)
        except S3Error:
            return None
        try:
            return response.read().decode("utf-8", "replace")
        finally:
            response.close()
            response.release_conn()

    def has(self, piece: Piece) -> bool:
        try:
            if piece.length is None:
                return (self._client.stat_object(self._bucket, piece.uri).size or 0) > 0
            response = self._client.get_object(
                self._bucket, piece.uri, offset=piece.offset, length=piece.length
            )
        except S3Error:
            return False
        try:
            return len(response.read()) == piece.length
        finally:
            response.close()
            response.release_conn()


@dataclass
class Followed:
    """What the bench saw of one job: seconds from its request, and its status events."""

    requested_at: float
    first_playable: float | None = None
    first_dash: float | None = None
    end: ev.AnyEvent | None = None
    events: tuple[ev.AnyEvent, ...] = ()


class Bench:
    """The transcode flow on isolated topics and bucket, fed one job at a time."""

    def __init__(self, settings: Settings, work: Path) -> None:
        self.settings = settings
        self.layout = ObjectLayout(settings.storage)
        self.client = make_client(settings.storage)
        self.store = BucketStore(self.client, settings.storage.bucket)
        self.status = TopicReader(settings, settings.kafka.topic_status)
        self.flow = FlowProcess("dataflows.transcode_flow", settings, work, snapshot_seconds=5)
        self.producer = make_producer(settings.kafka)

    def request(self, clip: Path, found: ev.Probe) -> tuple[str, str, float]:
        """Store ``clip`` as a verified source and ask for its ladder: (video, job, when)."""
        video_id = uuid.uuid4().hex
        key = self.layout.source(video_id)
        self.client.fput_object(self.settings.storage.bucket, key, str(clip))
        digest = hashlib.sha256()
        with clip.open("rb") as source:
            while block := source.read(1 << 20):
                digest.update(block)
        source_ref = ev.SourceRef(bucket=self.settings.storage.bucket, key=key,
                                  size=clip.stat().st_size, sha256=digest.hexdigest())  # fmt: skip
        job_id = f"bench-{video_id}"
        request = ev.TranscodeRequested(
            id=uuid.uuid4().hex, video_id=video_id, job_id=job_id, source=source_ref, probe=found
        )
        produce_event(self.producer, self.settings.kafka.topic_jobs, request)
        flush_or_raise(self.producer)
        return video_id, job_id, request.ts

    def follow(self, video_id: str, requested_at: float, *, to_playable: bool) -> Followed:
        """Poll the bucket and the status topic until the job ends (or, with ``to_playable``,
        until its first playable moment)."""
        seen = Followed(requested_at)
        master = self.layout.hls_master(video_id)
        manifest = self.layout.dash_manifest(video_id)
        deadline = time.monotonic() + 3600
        dash_at = 0.0  # the next look at the MPD
        while True:
            if seen.first_playable is None and hls_playable(self.store, master):
                seen.first_playable = time.time() - requested_at
            if seen.first_dash is None and time.monotonic() >= dash_at:
                if dash_playable(self.store, manifest):
                    seen.first_dash = time.time() - requested_at
                # once HLS plays, every ~1 s: the bench's own reads take CPU from the flow
                dash_at = time.monotonic() + (1.0 if seen.first_playable is not None else 0)
            self.status.poll(0.1)
            seen.events = tuple(
                e for e in self.status.events if getattr(e, "video_id", None) == video_id
            )
            seen.end = next((e for e in seen.events if isinstance(e, FINISHED)), None)
            if (
                seen.end is not None
                and seen.first_playable is None
                and hls_playable(self.store, master)
            ):  # it ended between two looks
                seen.first_playable = time.time() - requested_at
            if seen.end is not None or (to_playable and seen.first_playable is not None):
                return seen
            self.flow.assert_running()
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"job of {video_id} unfinished; saw {[e.type for e in seen.events]}"
                )

    def cancel(self, video_id: str, job_id: str) -> float:
        """Stop a job and wait until the flow says it stopped: seconds from the cancel to the
        ``job.cancelled`` the flow made once its FFmpeg was gone (a speed goal of 2 s, measured
        here rather than in a test on a loaded machine)."""
        cancel = ev.TranscodeCancel(id=uuid.uuid4().hex, video_id=video_id, job_id=job_id)
        produce_event(self.producer, self.settings.kafka.topic_jobs, cancel)
        flush_or_raise(self.producer)
        events = self.status.wait_for(
            lambda es: any(isinstance(e, FINISHED) and e.video_id == video_id for e in es),
            600,
            self.flow,
        )
        ended = next(e for e in events if isinstance(e, FINISHED) and e.video_id == video_id)
        if not isinstance(ended, ev.JobCancelled):
            raise RuntimeError(f"the cancelled job ended as {ended.type}")
        return ended.ts - cancel.ts

    def stored(self, video_id: str) -> dict[str, int]:
        """Every object under the video's rendition prefixes, by key without the video id."""
        folders = {posixpath.dirname(self.layout.hls_master(video_id)) + "/",
                   posixpath.dirname(self.layout.rendition(video_id, 0)) + "/"}  # fmt: skip
        return {
            (item.object_name or "").replace(f"/{video_id}/", "/"): item.size or 0
            for folder in sorted(folders)
            for item in self.client.list_objects(
                self.settings.storage.bucket, prefix=folder, recursive=True
            )
        }


def references(
    clip: Path, found: ev.Probe, preset: str, work: Path, bare_only: bool = False
) -> tuple[float, float, float]:
    """The single-decode reference, the naive ladder and the flow's own command, bare: each
    does the flow's work, every rung and the job's one audio track (encoded once, as the flow's
    unit of the lowest rung does), so the ratios compare the same work. ``bare_only`` (while
    iterating): the flow's command alone, the other two reported as 0."""
    planned = plan_ladder(found, DEFAULT_LADDER)
    lowest = min(planned, key=lambda p: p.label)
    kbps = lowest.audio_kbps if lowest.audio else 0
    ffmpeg = ffmpeg_binary()
    reference = naive = 0.0
    if not bare_only:
        by_hand = encode_command(ffmpeg, str(clip), found, planned, work, preset, cascade=False,
                                 audio_kbps=kbps)  # fmt: skip
        reference = timed(by_hand)
        emit("reference_single_decode_seconds", reference, "s", rungs=[p.label for p in planned])
        naive = sum(
            timed(
                encode_command(ffmpeg, str(clip), found, [p], work, preset,
                               audio_kbps=kbps if p is lowest else 0)
            )
            for p in planned
        )  # fmt: skip
        emit("naive_one_ffmpeg_per_rung_seconds", naive, "s")
    bare, cpu = timed_cpu(
        encode_command(ffmpeg, str(clip), found, planned, work, preset, audio_kbps=kbps)
    )
    emit("flow_command_bare_seconds", bare, "s", note="the flow's cascaded command, no flow")
    emit("flow_command_bare_cpu_seconds", cpu, "s")
    return reference, naive, bare


def report_short(bench: Bench, video_id: str, seen: Followed, clip_seconds: int,
                 ladder: tuple[float, float, float]) -> None:  # fmt: skip
    """Every figure of the clip that ran to the end."""
    if not isinstance(seen.end, ev.JobCompleted):
        raise RuntimeError(f"the bench job did not complete: {seen.end!r}")
    reference, naive, bare = ladder
    total = seen.end.ts - seen.requested_at
    emit("flow_requested_to_completed_seconds", total, "s", clip_seconds=clip_seconds)
    emit("flow_vs_its_bare_command", total / bare, "ratio", target="<= 1.10")
    if reference and naive:  # measured (not --bare-only)
        emit("flow_vs_reference", total / reference, "ratio", target="<= 1.10")
        emit("flow_vs_naive", total / naive, "ratio", target="< 1")
    report_playable(seen, clip_seconds)
    objects = bench.stored(video_id)
    emit("stored_per_encoded_byte", stored_per_encoded(objects), "ratio", target="<= 1.02",
         stored_bytes=sum(objects.values()), encoded_bytes=encoded_bytes(objects))  # fmt: skip
    for name, seconds in phases(seen.events, seen.requested_at).items():
        emit(f"phase_{name}_seconds", seconds, "s", clip_seconds=clip_seconds)


def report_playable(seen: Followed, clip_seconds: int) -> None:
    if seen.first_playable is None:
        raise RuntimeError("the job ended without a playable master playlist")
    emit("first_playable_seconds", seen.first_playable, "s", clip_seconds=clip_seconds,
         target="<= 5")  # fmt: skip
    if seen.first_dash is not None:
        emit("first_playable_dash_seconds", seen.first_dash, "s", clip_seconds=clip_seconds)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--long-seconds", type=int, default=300, help="0: no long clip")
    parser.add_argument("--bare-only", action="store_true",
                        help="skip the reference and naive runs (while iterating)")  # fmt: skip
    args = parser.parse_args()
    base = load_settings()
    ensure_up(base)
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        clip = make_clip(work / "clip.mp4", args.seconds)
        long_clip = make_clip(work / "long.mp4", args.long_seconds) if args.long_seconds else None
        found = probe(str(clip))
        ladder = references(clip, found, base.transcode.preset, work, args.bare_only)

        settings = msgspec.structs.replace(isolated_copy(base, prefix="bench"), home=work / "home")
        bench = Bench(settings, work / "flow")
        bench.flow.start()
        try:
            time.sleep(3)
            assert bench.flow.process is not None
            sampler = CpuSampler(bench.flow.process.pid).start()
            video_id, _, requested_at = bench.request(clip, found)
            seen = bench.follow(video_id, requested_at, to_playable=False)
            for group, seconds in sorted(sampler.stop().items()):
                emit(f"cpu_{group}_seconds", seconds, "s", clip_seconds=args.seconds,
                     example=sampler.seen.get(group, ""))  # fmt: skip
            report_short(bench, video_id, seen, args.seconds, ladder)
            if long_clip is not None:
                long_id, job_id, requested_at = bench.request(long_clip, probe(str(long_clip)))
                seen = bench.follow(long_id, requested_at, to_playable=True)
                # its first playable moment is all it is here for; and how fast a cancel is
                stopped = bench.cancel(long_id, job_id)
                emit("cancel_to_cancelled_seconds", stopped, "s", target="<= 2")
                report_playable(seen, args.long_seconds)
        finally:
            bench.flow.stop()
            bench.status.close()
            remove_isolated(settings)  # its bucket holds GiBs


if __name__ == "__main__":
    main()
