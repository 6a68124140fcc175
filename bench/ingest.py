"""Ingest throughput and memory against references measured in the same run.

Prints one JSON line per figure:
- ``sha256sum`` of the file and a plain MinIO put of the same bytes (the references);
- the flow's throughput from the file event to ``ingest.completed`` (bytes per second), and
  its tail: seconds from the last ``chunk.stored`` to ``ingest.completed`` (the completion);
- the flow's peak RSS for each file size (it must not grow with the file);
- CPU seconds per GiB of the flow process and of the object store while the flow ingests
  (``bench/cpu.py``): on two cores, what the store spends per byte bounds the flow's rate;
- the watch path's storage amplification (bytes added to the bucket per byte of the file).
- the upload path's storage amplification (bytes added to the bucket per byte of the file).

Needs the local stack (``vidflow stack up``). Usage: ``python bench/ingest.py [--sizes 1,4]`` (GiB).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.cpu import CpuSampler
from connectors.kafka import flush_or_raise, make_producer, produce_event
from connectors.storage import make_client
from core import events as ev
from core.ids import upload_completed
from core.layout import ObjectLayout
from core.settings import Settings, load_settings
from tests.flows import FlowProcess, TopicReader
from tests.isolation import isolated_copy, remove_isolated
from vidflow.stack import ensure_up

GiB = 1024**3


def emit(figure: str, value: float, unit: str, **extra: object) -> None:
    print(
        json.dumps(
            {"bench": "ingest", "figure": figure, "value": round(value, 3), "unit": unit, **extra}
        ),
        flush=True,
    )


def make_file(path: Path, size: int) -> None:
    """Random bytes (no chunk repeats, so nothing is deduplicated)."""
    block = 16 * 1024 * 1024
    with path.open("wb") as handle:
        for _ in range(size // block):
            handle.write(os.urandom(block))


def settle() -> None:
    """Flush dirty pages first (the file just written, the previous figure's objects), so each
    figure pays for its own writes and not for the writeback of the one before."""
    os.sync()
    time.sleep(1)


def peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


class ChunkTimes:
    """When the flow's chunk events arrived (the predicate of ``TopicReader.wait_for`` is asked
    after every message): where the flow's time goes, the chunks or the completion after them."""

    def __init__(self) -> None:
        self.first = self.last = self.end = 0.0
        self._count = 0

    def ended(self, events: list[ev.AnyEvent]) -> bool:
        now = time.perf_counter()
        count = sum(1 for e in events if isinstance(e, ev.ChunkStored))
        if count > self._count:
            self.first, self.last, self._count = self.first or now, now, count
        if any(isinstance(e, ev.IngestCompleted | ev.JobFailed) for e in events):
            self.end = self.end or now
            return True
        return False

    def tail(self) -> float:
        """Seconds from the last chunk stored to the stream's end (its completion)."""
        return self.end - self.last


def run_flow(settings: Settings, path: Path, workdir: Path) -> tuple[float, int]:
    """Seconds from the file event to ingest.completed, and the flow's peak RSS in KiB; prints
    the watch path's storage amplification (bytes the bucket gained per byte of the file)."""
    # file events are admitted only under the watched roots (issue 9): the file's folder is one
    ingest = msgspec.structs.replace(settings.ingest, watch_roots=(str(path.parent),))
    settings = msgspec.structs.replace(settings, ingest=ingest)
    client = make_client(settings.storage)

    def bucket_bytes() -> int:
        listed = client.list_objects(settings.storage.bucket, recursive=True)
        return sum(int(o.size or 0) for o in listed)

    before = bucket_bytes()
    status = TopicReader(settings, settings.kafka.topic_status)
    flow = FlowProcess("dataflows.ingest_flow", settings, workdir, snapshot_seconds=5).start()
    try:
        time.sleep(3)  # start-up is not ingest time
        stat = path.stat()
        producer = make_producer(settings.kafka)
        event = ev.FileClosed(
            id=uuid.uuid4().hex, stream_id=f"bench:{path}", host="bench", path=str(path),
            size=stat.st_size, mtime=stat.st_mtime, inode=stat.st_ino,
        )  # fmt: skip
        settle()
        assert flow.process is not None
        sampler = CpuSampler(flow.process.pid).start()
        started = time.perf_counter()
        produce_event(producer, settings.kafka.topic_file_events, event)
        flush_or_raise(producer)
        seen = ChunkTimes()
        status.wait_for(seen.ended, 1800, flow)
        elapsed = time.perf_counter() - started
        spent, gib = sampler.stop(), stat.st_size / GiB
        for group in ("flow", "store"):
            per_gib = spent.get(group, 0.0) / gib
            emit(f"cpu_{group}_seconds_per_gib", per_gib, "s", size=stat.st_size)
        emit(
            "flow_tail_seconds", seen.tail(), "s", size=stat.st_size,
            first_chunk=round(seen.first - started, 3),
        )  # fmt: skip
        peak = peak_rss_kib(flow.process.pid)
        added, size = bucket_bytes() - before, path.stat().st_size
        emit("storage_amplification", added / size, "ratio", path="watch", size=size, added=added)
        return elapsed, peak
    finally:
        flow.stop()
        status.close()
        remove_isolated(settings)  # its bucket holds GiBs


def upload_amplification(base: Settings, path: Path, workdir: Path) -> None:
    """Prints the upload path's storage amplification: bytes the bucket gained (the upload in
    ``incoming/`` included) per byte of the file, from before the put to ``ingest.completed``."""
    settings = isolated_copy(base, prefix="bench")
    client, bucket = make_client(settings.storage), settings.storage.bucket

    def bucket_bytes() -> int:
        return sum(int(o.size or 0) for o in client.list_objects(bucket, recursive=True))

    before, size = bucket_bytes(), path.stat().st_size
    upload_id = uuid.uuid4().hex
    key = ObjectLayout(settings.storage).incoming(upload_id)
    client.fput_object(bucket, key, str(path))
    status = TopicReader(settings, settings.kafka.topic_status)
    flow = FlowProcess("dataflows.ingest_flow", settings, workdir, snapshot_seconds=5).start()
    try:
        producer = make_producer(settings.kafka)
        announced = upload_completed(
            upload_id, bucket=bucket, key=key, size=size, filename=path.name, owner="bench",
            profile=settings.transcode.default_profile,
        )  # fmt: skip
        produce_event(producer, settings.kafka.topic_uploads, announced)
        flush_or_raise(producer)
        status.wait_for(
            lambda es: any(isinstance(e, ev.IngestCompleted | ev.JobFailed) for e in es), 1800, flow
        )
        added = bucket_bytes() - before
        emit("storage_amplification", added / size, "ratio", path="upload", size=size, added=added)
    finally:
        flow.stop()
        status.close()
        remove_isolated(settings)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1,4", help="file sizes in GiB, comma separated")
    args = parser.parse_args()
    base = load_settings(
        {
            **os.environ,
            "VIDFLOW_INGEST_CLOSE_IS_FINAL": "true",
            "VIDFLOW_INGEST_STREAM_TIMEOUT": "2",
        }
    )
    ensure_up(base)
    rss: dict[int, int] = {}
    with tempfile.TemporaryDirectory(dir=Path(base.home).resolve()) as scratch:
        for gib in (int(s) for s in args.sizes.split(",")):
            path = Path(scratch) / f"bench-{gib}g.bin"
            make_file(path, gib * GiB)
            size = path.stat().st_size
            settings = isolated_copy(base, prefix="bench")
            if gib == 1:
                settle()
                started = time.perf_counter()
                subprocess.run(["sha256sum", str(path)], check=True, capture_output=True)
                sha_rate = size / (time.perf_counter() - started)
                emit("sha256sum_throughput", sha_rate, "B/s", size=size)
                client = make_client(settings.storage)
                settle()
                started = time.perf_counter()
                client.fput_object(settings.storage.bucket, "plain-put", str(path))
                put_rate = size / (time.perf_counter() - started)
                emit("minio_put_throughput", put_rate, "B/s", size=size)
                client.remove_object(settings.storage.bucket, "plain-put")
            seconds, peak = run_flow(settings, path, Path(scratch) / f"flow-{gib}")
            upload_amplification(base, path, Path(scratch) / f"upload-{gib}")
            rss[gib] = peak
            emit("flow_throughput", size / seconds, "B/s", size=size, seconds=round(seconds, 2))
            emit("flow_peak_rss", peak / 1024, "MiB", size=size)
            if gib == 1:
                emit(
                    "flow_vs_slower_reference", (size / seconds) / min(sha_rate, put_rate), "ratio"
                )
            path.unlink()
    if len(rss) > 1:
        sizes = sorted(rss)
        emit("peak_rss_ratio_largest_vs_smallest", rss[sizes[-1]] / rss[sizes[0]], "ratio")


if __name__ == "__main__":
    main()
