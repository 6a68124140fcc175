"""Transcode wall time against hand-written FFmpeg references measured in the same run.

A generated 1080p clip (60 s by default) through the default profile. Prints one JSON line per
figure: the flow from ``transcode.requested`` to ``job.completed`` and to the first playable
master playlist; one ``ffmpeg`` producing the same MP4 rungs with one decode, each rung scaled
from the source as a hand-written ladder command does (the reference); one ``ffmpeg`` per rung in
sequence (the naive way); the flow's own command (rungs scaled in cascade) run bare, outside the
flow, so the flow's own overhead shows too; and the ratios.

Needs the local stack (``vidflow stack up``). Usage: ``python bench/transcode.py [--seconds 60]``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from connectors.ffmpeg import ffmpeg_binary, probe
from connectors.kafka import flush_or_raise, make_producer, produce_event
from connectors.storage import make_client
from core import events as ev
from core.layout import ObjectLayout
from core.profiles import DEFAULT_LADDER
from core.settings import load_settings
from dataflows.transcode.commands import encode_command
from dataflows.transcode.ladder import plan_ladder
from tests.flows import FlowProcess, TopicReader
from tests.isolation import isolated_copy, remove_isolated
from vidflow.stack import ensure_up


def emit(figure: str, value: float, unit: str, **extra: object) -> None:
    line = {"bench": "transcode", "figure": figure, "value": round(value, 3), "unit": unit, **extra}
    print(json.dumps(line), flush=True)


def timed(argv: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=60)
    args = parser.parse_args()
    base = load_settings()
    ensure_up(base)
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        clip = work / "clip.mp4"
        source = ["-f", "lavfi", "-i", "testsrc2=size=1920x1080:rate=30",
                  "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"]  # fmt: skip
        encode = [
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-b:v",
            "8M",
            "-c:a",
            "aac",
            "-shortest",
        ]
        subprocess.run(
            [ffmpeg_binary(), "-v", "error", *source, "-t", str(args.seconds), *encode, str(clip)],
            check=True,
        )
        found = probe(str(clip))
        planned = plan_ladder(found, DEFAULT_LADDER)
        preset = base.transcode.preset

        ffmpeg = ffmpeg_binary()
        by_hand = encode_command(ffmpeg, str(clip), found, planned, work, preset, cascade=False)
        reference = timed(by_hand)
        emit("reference_single_decode_seconds", reference, "s", rungs=[p.label for p in planned])
        naive = sum(
            timed(encode_command(ffmpeg, str(clip), found, [p], work, preset)) for p in planned
        )
        emit("naive_one_ffmpeg_per_rung_seconds", naive, "s")
        bare = timed(encode_command(ffmpeg, str(clip), found, planned, work, preset))
        emit("flow_command_bare_seconds", bare, "s", note="the flow's cascaded command, no flow")

        settings = msgspec.structs.replace(isolated_copy(base, prefix="bench"), home=work / "home")
        data = clip.read_bytes()
        video_id = uuid.uuid4().hex
        key = ObjectLayout(settings.storage).source(video_id)
        make_client(settings.storage).fput_object(settings.storage.bucket, key, str(clip))
        request = ev.TranscodeRequested(
            id=uuid.uuid4().hex, video_id=video_id, job_id=f"bench-{video_id}",
            source=ev.SourceRef(bucket=settings.storage.bucket, key=key, size=len(data),
                                sha256=hashlib.sha256(data).hexdigest()),
            probe=found,
        )  # fmt: skip
        status = TopicReader(settings, settings.kafka.topic_status)
        flow = FlowProcess("dataflows.transcode_flow", settings, work / "flow", snapshot_seconds=5)
        flow.start()
        try:
            time.sleep(3)
            producer = make_producer(settings.kafka)
            started = time.perf_counter()
            produce_event(producer, settings.kafka.topic_jobs, request)
            flush_or_raise(producer)
            status.wait_for(
                lambda es: any(isinstance(e, ev.RenditionCompleted) for e in es), 3600, flow
            )
            first_playable = time.perf_counter() - started
            status.wait_for(
                lambda es: any(isinstance(e, ev.JobCompleted | ev.JobFailed) for e in es),
                3600,
                flow,
            )
            total = time.perf_counter() - started
        finally:
            flow.stop()
            status.close()
            remove_isolated(settings)  # its bucket holds GiBs
        emit("flow_requested_to_completed_seconds", total, "s")
        emit("flow_first_playable_seconds", first_playable, "s", clip_seconds=args.seconds)
        emit("flow_vs_reference", total / reference, "ratio", target="<= 1.15")
        emit("flow_vs_its_bare_command", total / bare, "ratio", note="what the flow itself costs")
        emit("flow_vs_naive", total / naive, "ratio", target="< 1")
        emit(
            "first_playable_vs_clip_duration",
            first_playable / args.seconds,
            "ratio",
            target="<= 0.25",
        )


if __name__ == "__main__":
    main()
