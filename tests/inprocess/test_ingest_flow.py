"""The ingest flow's graph in this process, on one and two workers: chunking across events,
completion by inactivity and by close, versions, restarts, dead letters.

Kafka is a scripted source and a list; the object store an in-memory ChunkStore (its S3 semantics
are the integration tests'); files and ffprobe are real. Timeouts are short, so each test takes
seconds.
"""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TypeVar

import msgspec
import pytest
from bytewax.testing import TestingSink

from core import events as ev
from core.settings import MiB, Settings, load_settings
from dataflows.ingest_flow import build_flow
from dataflows.transcode.cluster import worker_for
from tests.inprocess.fakes import MemoryChunkStore
from tests.inprocess.harness import Do, Output, Pause, Script, ScriptedSource, Until, run_flow
from tests.media import raw_clip

E = TypeVar("E")
pytestmark = pytest.mark.integration  # real files and FFmpeg (ffprobe); no service

HOST = "inprocess"
WAIT = 30.0  # seconds any one wait of a script may take before the test fails


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """4 s of raw video, 11 MB: three 5 MiB chunks, the last one short."""
    return raw_clip(tmp_path_factory.mktemp("media") / "clip.mkv").read_bytes()


@pytest.fixture(scope="module")
def short_clip(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """1 s of raw video, 2.9 MB: one short chunk."""
    return raw_clip(tmp_path_factory.mktemp("media") / "short.mkv", seconds=1).read_bytes()


# How long a complete file's close waits for a late write before it ends the stream: these
# scripts write nothing after a close they mean as the end, so every closed file waited out the
# 2 s default (the grace itself is tested in tests/integration/test_ingest_closing.py).
GRACE = 0.3


def ingest_settings(home: Path, *, timeout: float, close_is_final: bool = False) -> Settings:
    base = load_settings({"VIDFLOW_HOME": str(home)})
    ingest = msgspec.structs.replace(
        base.ingest, chunk_size=5 * MiB, stream_timeout=timeout, close_is_final=close_is_final,
        close_grace=GRACE,
        watch_roots=(str(home),),  # file events are admitted only under the watched roots
    )  # fmt: skip
    return msgspec.structs.replace(base, ingest=ingest)


class Watched:
    """A file as the watcher reports it: each event says the size the file has when sent."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.stream_id = f"{HOST}:{path}"

    def event(self, *, closed: bool = False) -> Callable[[], ev.Event]:
        def make() -> ev.Event:
            stat = self.path.stat()
            kind = ev.FileClosed if closed else ev.FileChanged
            return kind(
                id=uuid.uuid4().hex, stream_id=self.stream_id, host=HOST, path=str(self.path),
                size=stat.st_size, mtime=stat.st_mtime, inode=stat.st_ino,
            )  # fmt: skip

        return make

    def append(self, data: bytes) -> Do:
        def write() -> None:
            with self.path.open("ab") as handle:
                handle.write(data)

        return Do(write)


class Ingest:
    """One run of the ingest graph: its settings, store, script and what it wrote."""

    def __init__(self, settings: Settings, tmp_path: Path) -> None:
        self.settings = settings
        self.store = MemoryChunkStore(settings, tmp_path / "store")
        self.script = Script()
        self.out = Output()
        k = settings.kafka
        self.files, self.uploads, self.status, self.jobs = (
            k.topic_file_events, k.topic_uploads, k.topic_status, k.topic_jobs,
        )  # fmt: skip

    def statuses(self, kind: type[E]) -> list[E]:
        return self.out.of(self.status, kind)

    def requests(self) -> list[ev.TranscodeRequested]:
        return self.out.of(self.jobs, ev.TranscodeRequested)

    def until(self, done: Callable[[], bool], what: str) -> Until:
        return Until(done, WAIT, what)

    def until_requests(self, count: int) -> Until:
        return self.until(lambda: len(self.requests()) >= count, f"{count} transcode.requested")

    def run(self, workers: int) -> float:
        source = ScriptedSource(self.script.steps)
        flow = build_flow(
            self.settings, source=source, sink=TestingSink(self.out), store=self.store
        )
        seconds = run_flow(flow, workers)
        types = [e.type for e in self.out.events(self.status)]
        assert not source.timed_out, f"timed out waiting for {source.timed_out}; status: {types}"
        return seconds

    def source_of(self, video_id: str) -> bytes:
        return self.store.objects[self.store.layout.source(video_id)]


def stamp(marks: dict[str, float], name: str) -> Do:
    """A step noting when the script reached it."""
    return Do(lambda: marks.__setitem__(name, time.monotonic()))


def at_least(count: Callable[[], int], wanted: int) -> bool:
    return count() >= wanted


def of_video(events: list[ev.AnyEvent], video_id: str) -> list[ev.AnyEvent]:
    return [e for e in events if getattr(e, "video_id", None) == video_id]


def test_a_file_is_cut_into_chunks_as_it_grows_and_completes_once_quiet(
    workers: int, tmp_path: Path, clip: bytes
) -> None:
    timeout = 1.0
    run = Ingest(ingest_settings(tmp_path, timeout=timeout), tmp_path)
    watched = Watched(tmp_path / "recording.mkv")

    def chunks() -> int:
        return len(run.statuses(ev.ChunkStored))

    seen: list[int] = []
    marks: dict[str, float] = {}
    third = -(-len(clip) // 3)
    for piece, whole_chunks in enumerate((0, 1, 2)):  # 3.8, 7.7 and 11.5 MB written
        run.script.then(watched.append(clip[piece * third : (piece + 1) * third]))
        run.script.then(stamp(marks, "last event"))
        run.script.send(run.files, watched.event())
        run.script.then(
            run.until(partial(at_least, chunks, whole_chunks), f"{whole_chunks} chunks"),
            Pause(0.2),  # time to cut a chunk too many, were the plan wrong
            Do(lambda: seen.append(chunks())),
        )
    run.script.then(run.until_requests(1), stamp(marks, "done"))

    seconds = run.run(workers)

    assert seen == [0, 1, 2]  # only whole chunks while the file grows; the tail waits for the end
    # completed by inactivity: not before the stream timeout after the last event was sent
    assert marks["done"] - marks["last event"] >= timeout
    [request] = run.requests()
    video = request.video_id
    status = of_video(run.out.events(run.status), video)
    assert [e.type for e in status] == [
        "ingest.started", "chunk.stored", "chunk.stored", "chunk.stored",
        "ingest.completed", "probe.completed",
    ]  # fmt: skip
    stored = [e.chunk for e in status if isinstance(e, ev.ChunkStored)]
    assert [(c.offset, c.size) for c in stored] == [
        (0, 5 * MiB), (5 * MiB, 5 * MiB), (10 * MiB, len(clip) - 10 * MiB),
    ]  # fmt: skip
    assert [e.seq for e in status if isinstance(e, ev.StatusBase)] == list(range(1, 7))
    completed = next(e for e in status if isinstance(e, ev.IngestCompleted))
    sha = hashlib.sha256(clip).hexdigest()
    assert (completed.manifest.size, completed.manifest.sha256) == (len(clip), sha)
    assert run.source_of(video) == clip
    assert request.source.key == run.store.layout.source(video)
    assert (request.source.sha256, request.source.size) == (sha, len(clip))
    assert (request.probe.width, request.probe.height) == (320, 240)
    # each chunk sent once, as a part of the one source object: no chunk objects beside it
    assert run.store.keys_of(video) == {run.store.layout.source(video)}
    assert not [k for k in run.store.objects if k.startswith(run.store.layout.chunk(""))]
    assert run.store.puts == len(stored)
    assert seconds < WAIT


def test_two_files_written_interleaved_on_different_workers(
    workers: int, tmp_path: Path, clip: bytes, short_clip: bytes
) -> None:
    run = Ingest(ingest_settings(tmp_path, timeout=1.0), tmp_path)
    first = Watched(tmp_path / "a.mkv")
    # a second name whose stream Bytewax sends to the other worker of two
    second = next(
        w
        for w in (Watched(tmp_path / f"b{i}.mkv") for i in range(64))
        if worker_for(w.stream_id, 2) != worker_for(first.stream_id, 2)
    )
    for piece in range(4):
        for watched, data in ((first, clip), (second, short_clip)):
            step = -(-len(data) // 4)
            run.script.then(watched.append(data[piece * step : (piece + 1) * step]))
            run.script.send(run.files, watched.event())
        run.script.then(Pause(0.1))
    run.script.then(run.until_requests(2))

    run.run(workers)

    by_name = {r.filename: r for r in run.requests()}
    assert set(by_name) == {first.path.name, second.path.name}
    for watched, data in ((first, clip), (second, short_clip)):
        request = by_name[watched.path.name]
        assert run.source_of(request.video_id) == data
        status = of_video(run.out.events(run.status), request.video_id)
        assert [e.seq for e in status if isinstance(e, ev.StatusBase)] == list(
            range(1, len(status) + 1)
        )


def test_file_closed_completes_at_once(workers: int, tmp_path: Path, clip: bytes) -> None:
    timeout = 60.0
    run = Ingest(ingest_settings(tmp_path, timeout=timeout, close_is_final=True), tmp_path)
    watched = Watched(tmp_path / "closed.mkv")
    half = len(clip) // 2
    run.script.then(watched.append(clip[:half]))
    run.script.send(run.files, watched.event())  # still being written: the stream stays open
    run.script.then(run.until(lambda: bool(run.statuses(ev.ChunkStored)), "a chunk"))
    run.script.then(watched.append(clip[half:]))
    run.script.send(run.files, watched.event(closed=True))
    run.script.then(run.until_requests(1))

    seconds = run.run(workers)

    assert seconds < timeout / 4  # nowhere near the stream timeout
    [request] = run.requests()
    assert run.source_of(request.video_id) == clip
    assert len(run.statuses(ev.IngestStarted)) == 1
    assert len(run.statuses(ev.ChunkStored)) == 3


def test_a_file_that_grows_after_completion_becomes_a_new_video(
    workers: int, tmp_path: Path, short_clip: bytes, clip: bytes
) -> None:
    run = Ingest(ingest_settings(tmp_path, timeout=0.5), tmp_path)
    watched = Watched(tmp_path / "growing.mkv")
    more = clip[: 3 * MiB]
    run.script.then(watched.append(short_clip))
    run.script.send(run.files, watched.event())
    run.script.then(run.until_requests(1), watched.append(more))
    run.script.send(run.files, watched.event())
    run.script.then(run.until_requests(2))

    run.run(workers)

    first, second = run.requests()
    assert first.video_id != second.video_id
    assert first.source.key != second.source.key
    assert run.source_of(first.video_id) == short_clip  # the old version is untouched
    assert run.source_of(second.video_id) == short_clip + more
    assert second.source.size == len(short_clip) + len(more)
    started = run.statuses(ev.IngestStarted)
    assert [e.video_id for e in started] == [first.video_id, second.video_id]


@pytest.mark.parametrize("change", ["replaced", "shrunk"])
def test_a_replaced_or_shrunk_file_restarts_as_a_new_video(
    change: str, workers: int, tmp_path: Path, short_clip: bytes
) -> None:
    run = Ingest(ingest_settings(tmp_path, timeout=10.0, close_is_final=True), tmp_path)
    watched = Watched(tmp_path / f"{change}.mkv")

    def change_file() -> None:
        if change == "replaced":  # a new inode at the same path
            fresh = tmp_path / "fresh.tmp"
            fresh.write_bytes(short_clip)
            fresh.replace(watched.path)
        else:  # truncated and rewritten in place, smaller
            with watched.path.open("r+b") as handle:
                handle.truncate(0)
                handle.write(short_clip)

    run.script.then(watched.append(os.urandom(11 * MiB)))  # two whole chunks are cut at once
    run.script.send(run.files, watched.event())
    run.script.then(run.until(lambda: len(run.statuses(ev.ChunkStored)) >= 2, "2 chunks"))
    run.script.then(Do(change_file))
    run.script.send(run.files, watched.event(closed=True))
    run.script.then(run.until_requests(1))

    run.run(workers)

    [request] = run.requests()
    first = run.statuses(ev.IngestStarted)[0].video_id
    assert first != request.video_id
    first_events = of_video(run.out.events(run.status), first)
    restarted = [e for e in first_events if isinstance(e, ev.IngestRestarted)]
    assert len(restarted) == 1
    assert ("replaced" if change == "replaced" else "shrank") in restarted[0].reason
    assert request.video_id in restarted[0].reason  # the abandoned video names its successor
    assert not any(isinstance(e, ev.IngestCompleted | ev.JobFailed) for e in first_events)
    assert len(run.store.abandoned) == 1 and not run.store.uploads  # its multipart source dropped
    assert run.store.layout.source(first) not in run.store.objects
    assert run.source_of(request.video_id) == short_clip


def test_undecodable_and_wrong_family_messages_are_dead_letters_and_the_flow_goes_on(
    workers: int, tmp_path: Path, short_clip: bytes
) -> None:
    run = Ingest(ingest_settings(tmp_path, timeout=10.0, close_is_final=True), tmp_path)
    garbage = b'{"v": 1, "type": "file.changed", "size": -1'
    stray = ev.encode(
        ev.JobFailed(id="x", video_id="v1", run="ingest:v1", seq=1, reason="x", stage="ingest")
    )
    misplaced = ev.encode(
        ev.FileChanged(id="y", stream_id="h:/a", host="h", path="/a", size=1, mtime=0)
    )
    letters = {
        (run.files, run.script.send(run.files, garbage)): garbage,
        (run.files, run.script.send(run.files, stray)): stray,
        (run.uploads, run.script.send(run.uploads, misplaced)): misplaced,
    }
    watched = Watched(tmp_path / "after.mkv")
    run.script.then(watched.append(short_clip))
    run.script.send(run.files, watched.event(closed=True))
    run.script.then(run.until_requests(1))

    run.run(workers)

    dead = run.out.of(run.settings.kafka.topic_dlq, ev.DeadLetter)
    assert {(d.source_topic, d.offset): d.raw for d in dead} == letters
    by_raw = {d.raw: d for d in dead}
    assert "does not belong on the file-events topic" in by_raw[stray].error
    assert "does not belong on the uploads topic" in by_raw[misplaced].error
    assert by_raw[garbage].error
    [request] = run.requests()  # the flow went on
    assert run.source_of(request.video_id) == short_clip


def test_the_same_bytes_twice_are_stored_once_and_both_videos_read_them(
    workers: int, tmp_path: Path, short_clip: bytes
) -> None:
    """A watched file whose whole SHA-256 equals a stored source keeps no source of its own:
    its parts were sent as it was read, and at completion its video adopts the stored bytes
    (its own are removed). (Until the in-memory store had an index of its own, this test read
    the dedup index from whatever MinIO ran on the default port, found none, and expected two
    copies.)"""
    run = Ingest(ingest_settings(tmp_path, timeout=10.0, close_is_final=True), tmp_path)
    for count, name in enumerate(("first.mkv", "second.mkv"), start=1):
        watched = Watched(tmp_path / name)
        run.script.then(watched.append(short_clip))
        run.script.send(run.files, watched.event(closed=True))
        run.script.then(run.until_requests(count))

    run.run(workers)

    first, second = run.requests()
    stored = {
        r.video_id: [e for e in run.statuses(ev.ChunkStored) if e.video_id == r.video_id]
        for r in (first, second)
    }
    # chunks are parts of their video's source, never shared objects: sameness is found by the
    # whole file's SHA-256 once it is complete
    assert [e.deduplicated for e in stored[first.video_id]] == [False]
    assert [e.deduplicated for e in stored[second.video_id]] == [False]
    assert [e.chunk for e in stored[first.video_id]] == [e.chunk for e in stored[second.video_id]]
    assert run.store.puts == 2
    assert first.source.sha256 == second.source.sha256
    manifests = {e.video_id: e.manifest for e in run.statuses(ev.IngestCompleted)}
    layout = run.store.layout
    own = layout.source(first.video_id)
    # the manifest is the record of where a video's bytes are (a request's key is never believed)
    assert layout.source_of(manifests[first.video_id], first.video_id) == own
    assert layout.source_of(manifests[second.video_id], second.video_id) == own
    sources = [k for k in run.store.objects if k.startswith("sources/") and k.endswith("/source")]
    assert sources == [own]  # the bytes once
    assert run.store.objects[own] == short_clip


def test_an_empty_file_and_a_file_that_is_no_video_fail_and_request_nothing(
    workers: int, tmp_path: Path
) -> None:
    run = Ingest(ingest_settings(tmp_path, timeout=1.0, close_is_final=True), tmp_path)
    empty, text = Watched(tmp_path / "empty.mp4"), Watched(tmp_path / "notes.mp4")
    run.script.then(empty.append(b""), text.append(b"this is not a video, just text\n" * 1000))
    run.script.send(run.files, empty.event(closed=True))
    run.script.send(run.files, text.event(closed=True))
    run.script.then(run.until(lambda: len(run.statuses(ev.JobFailed)) >= 2, "2 job.failed"))

    run.run(workers)

    started = {e.video_id: e.filename for e in run.statuses(ev.IngestStarted)}
    failed = {started[e.video_id]: e for e in run.statuses(ev.JobFailed)}
    assert failed["empty.mp4"].stage == "ingest"
    assert failed["notes.mp4"].stage == "probe"  # stored and verified, then refused by ffprobe
    completed = [started[e.video_id] for e in run.statuses(ev.IngestCompleted)]
    assert completed == ["notes.mp4"]
    assert run.requests() == []


def test_a_source_upload_lost_mid_stream_is_sent_again_from_the_start(
    workers: int, tmp_path: Path, clip: bytes
) -> None:
    """The store forgot the stream's multipart upload (expired or aborted while the flow was
    down): the stream reads and sends its bytes again in a new upload, and ends as a clean run."""
    run = Ingest(ingest_settings(tmp_path, timeout=10.0, close_is_final=True), tmp_path)
    watched = Watched(tmp_path / "lost.mkv")
    first_chunk = 5 * MiB

    def parts_sent() -> int:
        return len(run.statuses(ev.ChunkStored))

    run.script.then(watched.append(clip[:first_chunk]))
    run.script.send(run.files, watched.event())
    run.script.then(run.until(partial(at_least, parts_sent, 1), "1 chunk"))
    run.script.then(Do(run.store.uploads.clear), watched.append(clip[first_chunk:]))
    run.script.send(run.files, watched.event(closed=True))
    run.script.then(run.until_requests(1))

    run.run(workers)

    [request] = run.requests()
    video = request.video_id
    [completed] = [e for e in run.statuses(ev.IngestCompleted) if e.video_id == video]
    offsets = [(c.offset, c.size) for c in completed.manifest.chunks]
    assert offsets == [(0, 5 * MiB), (5 * MiB, 5 * MiB), (10 * MiB, len(clip) - 10 * MiB)]
    assert [c.index for c in completed.manifest.chunks] == [0, 1, 2]
    assert completed.manifest.sha256 == hashlib.sha256(clip).hexdigest()
    assert run.source_of(video) == clip
    assert run.store.puts == 4  # the first chunk twice: once in the lost upload, once again
    assert not run.statuses(ev.JobFailed)
