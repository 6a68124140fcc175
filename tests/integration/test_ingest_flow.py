"""The ingest dataflow on real Kafka, MinIO and FFmpeg, run as a child process like production.

File events are produced here directly (the watcher has its own tests), with a stream timeout of
two seconds and 5 MiB chunks, so an 11 MB clip makes three chunks.
"""

from __future__ import annotations

import hashlib
import io
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from connectors.kafka import flush_or_raise, make_producer, produce_event
from connectors.storage import make_client
from tests.flows import FlowProcess, TopicReader, flow_cluster
from tests.media import raw_clip
from vidflow import events as ev
from vidflow.layout import ObjectLayout
from vidflow.settings import MiB, Settings

pytestmark = pytest.mark.integration

TIMEOUT = 2.0
HOST = socket.gethostname()


@pytest.fixture
def ingest_settings(isolated_settings: Settings) -> Settings:
    ingest = msgspec.structs.replace(
        isolated_settings.ingest, chunk_size=5 * MiB, stream_timeout=TIMEOUT, close_is_final=False
    )
    return msgspec.structs.replace(isolated_settings, ingest=ingest)


@pytest.fixture
def flow(
    request: pytest.FixtureRequest, ingest_settings: Settings, tmp_path: Path
) -> Iterator[FlowProcess]:
    """The flow on one worker, ``N`` workers (``param=N``) or two processes (``"cluster"``);
    a cluster yields its first process, and every process must still run at the end."""
    shape = getattr(request, "param", 1)
    if shape == "cluster":
        processes = flow_cluster("dataflows.ingest_flow", ingest_settings, tmp_path / "cluster")
    else:
        processes = [FlowProcess("dataflows.ingest_flow", ingest_settings, tmp_path, workers=shape)]
    for process in processes:
        process.start()
    try:
        yield processes[0]
        for process in processes:
            process.assert_running()
    finally:
        for process in processes:
            process.stop()


@pytest.fixture
def status(ingest_settings: Settings) -> Iterator[TopicReader]:
    reader = TopicReader(ingest_settings, ingest_settings.kafka.topic_status)
    yield reader
    reader.close()


class Writer:
    """Writes a file piece by piece and announces each write as ``file.changed``."""

    def __init__(self, settings: Settings, path: Path) -> None:
        self.settings = settings
        self.path = path
        self.stream_id = f"{HOST}:{path}"
        self.producer = make_producer(settings.kafka)

    def announce(self) -> None:
        stat = self.path.stat()
        event = ev.FileChanged(
            id=uuid.uuid4().hex, stream_id=self.stream_id, host=HOST, path=str(self.path),
            size=stat.st_size, mtime=stat.st_mtime, inode=stat.st_ino,
        )  # fmt: skip
        produce_event(self.producer, self.settings.kafka.topic_file_events, event)
        flush_or_raise(self.producer)

    def write_in_pieces(self, data: bytes, pieces: int, pause: float) -> None:
        step = -(-len(data) // pieces)
        with self.path.open("wb") as handle:
            for start in range(0, len(data), step):
                handle.write(data[start : start + step])
                handle.flush()
                self.announce()
                time.sleep(pause)


def terminal(video_events: list[ev.AnyEvent]) -> bool:
    return any(isinstance(e, ev.IngestCompleted | ev.JobFailed) for e in video_events)


def events_of(events: list[ev.AnyEvent], video_id: str) -> list[ev.AnyEvent]:
    return [e for e in events if getattr(e, "video_id", None) == video_id]


def video_of(events: list[ev.AnyEvent], filename: str) -> str:
    started = [e for e in events if isinstance(e, ev.IngestStarted) and e.filename == filename]
    assert started, f"no ingest.started for {filename}"
    return started[-1].video_id


def wait_done(
    status: TopicReader, flow: FlowProcess, filename: str, timeout: float = 60
) -> list[ev.AnyEvent]:
    def done(events: list[ev.AnyEvent]) -> bool:
        started = [e for e in events if isinstance(e, ev.IngestStarted) and e.filename == filename]
        return bool(started) and terminal(events_of(events, started[-1].video_id))

    status.wait_for(done, timeout, flow)
    time.sleep(0.5)
    status.poll(1.0)  # the events right after the terminal one (probe.completed)
    return events_of(status.events, video_of(status.events, filename))


def assert_source_matches(
    settings: Settings, completed: ev.IngestCompleted, original: bytes
) -> None:
    client = make_client(settings.storage)
    layout = ObjectLayout(settings.storage)
    manifest = completed.manifest
    assert manifest.sha256 == hashlib.sha256(original).hexdigest()
    assert manifest.size == len(original)
    assert [c.index for c in manifest.chunks] == list(range(len(manifest.chunks)))
    assert sum(c.size for c in manifest.chunks) == len(original)
    body = client.get_object(settings.storage.bucket, manifest.source_key)
    try:
        assert hashlib.sha256(body.read()).hexdigest() == manifest.sha256
    finally:
        body.close()
        body.release_conn()
    stored = client.get_object(settings.storage.bucket, layout.manifest(manifest.video_id))
    try:
        assert msgspec.json.decode(stored.read(), type=ev.Manifest) == manifest
    finally:
        stored.close()
        stored.release_conn()


def test_file_written_in_seven_pieces_becomes_one_source(
    ingest_settings: Settings, flow: FlowProcess, status: TopicReader, tmp_path: Path
) -> None:
    original = raw_clip(tmp_path / "clip.mkv").read_bytes()
    writer = Writer(ingest_settings, tmp_path / "recording.mkv")
    writer.write_in_pieces(original, pieces=7, pause=TIMEOUT / 3)

    events = wait_done(status, flow, "recording.mkv")
    types = [e.type for e in events]
    assert types.count("ingest.started") == 1
    completed = next(e for e in events if isinstance(e, ev.IngestCompleted))
    assert len(completed.manifest.chunks) == 3  # 11 MB in 5 MiB chunks
    assert_source_matches(ingest_settings, completed, original)
    probe = next(e for e in events if isinstance(e, ev.ProbeCompleted)).probe
    assert (probe.width, probe.height) == (320, 240)
    assert probe.duration == pytest.approx(4.0, abs=0.1)

    jobs = TopicReader(ingest_settings, ingest_settings.kafka.topic_jobs)
    requests = jobs.wait_for(lambda es: len(es) >= 1, 20)
    jobs.close()
    assert isinstance(requests[0], ev.TranscodeRequested)
    assert requests[0].video_id == completed.video_id
    assert requests[0].source.sha256 == completed.manifest.sha256
    seqs = [e.seq for e in events if isinstance(e, ev.StatusBase)]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)


@pytest.mark.parametrize(
    "flow", [1, 2, "cluster"], indirect=True, ids=["1-worker", "2-workers", "2-processes"]
)
def test_two_files_written_interleaved(
    ingest_settings: Settings, flow: FlowProcess, status: TopicReader, tmp_path: Path
) -> None:
    first = raw_clip(tmp_path / "a-src.mkv", seconds=3).read_bytes()
    second = raw_clip(tmp_path / "b-src.mkv", seconds=2, size="352x288").read_bytes()
    writers = [
        Writer(ingest_settings, tmp_path / "a.mkv"),
        Writer(ingest_settings, tmp_path / "b.mkv"),
    ]
    handles = [w.path.open("wb") for w in writers]
    try:
        for piece in range(4):
            for writer, handle, data in zip(writers, handles, (first, second), strict=True):
                step = -(-len(data) // 4)
                handle.write(data[piece * step : (piece + 1) * step])
                handle.flush()
                writer.announce()
            time.sleep(0.3)
    finally:
        for handle in handles:
            handle.close()

    for name, data in (("a.mkv", first), ("b.mkv", second)):
        events = wait_done(status, flow, name)
        completed = next(e for e in events if isinstance(e, ev.IngestCompleted))
        assert_source_matches(ingest_settings, completed, data)


def test_upload_is_read_by_ranges_through_the_same_chunk_path(
    ingest_settings: Settings, flow: FlowProcess, status: TopicReader, tmp_path: Path
) -> None:
    data = raw_clip(tmp_path / "upload.mkv", seconds=3).read_bytes()
    client = make_client(ingest_settings.storage)
    upload_id = uuid.uuid4().hex
    key = ObjectLayout(ingest_settings.storage).incoming(upload_id)
    client.put_object(ingest_settings.storage.bucket, key, io.BytesIO(data), len(data))
    producer = make_producer(ingest_settings.kafka)
    produce_event(
        producer,
        ingest_settings.kafka.topic_uploads,
        ev.UploadCompleted(
            id=uuid.uuid4().hex,
            upload_id=upload_id,
            bucket=ingest_settings.storage.bucket,
            key=key,
            size=len(data),
            filename="../../etc/passwd holiday.mkv",
            owner="alice",
        ),
    )
    flush_or_raise(producer)
    events = wait_done(status, flow, "passwd holiday.mkv")  # the name is reduced to its last part
    completed = next(e for e in events if isinstance(e, ev.IngestCompleted))
    assert_source_matches(ingest_settings, completed, data)
    assert completed.manifest.source_key.startswith("sources/")


def test_same_file_twice_is_fully_deduplicated(
    ingest_settings: Settings, flow: FlowProcess, status: TopicReader, tmp_path: Path
) -> None:
    data = raw_clip(tmp_path / "src.mkv", seconds=3).read_bytes()
    for name in ("first.mkv", "second.mkv"):
        path = tmp_path / name
        path.write_bytes(data)
        Writer(ingest_settings, path).announce()
        wait_done(status, flow, name)
    first = events_of(status.events, video_of(status.events, "first.mkv"))
    second = events_of(status.events, video_of(status.events, "second.mkv"))
    assert not any(e.deduplicated for e in first if isinstance(e, ev.ChunkStored))
    stored_again = [e for e in second if isinstance(e, ev.ChunkStored)]
    assert stored_again and all(e.deduplicated for e in stored_again)
    sources = [e for e in (*first, *second) if isinstance(e, ev.IngestCompleted)]
    assert len({s.manifest.source_key for s in sources}) == 2


def test_zero_byte_and_not_a_video_fail_with_reasons(
    ingest_settings: Settings, flow: FlowProcess, status: TopicReader, tmp_path: Path
) -> None:
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    Writer(ingest_settings, empty).announce()
    text = tmp_path / "notes.mp4"
    text.write_bytes(b"this is not a video, just some text\n" * 1000)
    Writer(ingest_settings, text).announce()

    empty_events = wait_done(status, flow, "empty.mp4")
    failed = next(e for e in empty_events if isinstance(e, ev.JobFailed))
    assert "empty" in failed.reason and failed.stage == "ingest"

    text_events = wait_done(status, flow, "notes.mp4")
    assert any(isinstance(e, ev.IngestCompleted) for e in text_events)
    failed = next(e for e in text_events if isinstance(e, ev.JobFailed))
    assert failed.stage == "probe" and "notes.mp4" in failed.reason
    jobs = TopicReader(ingest_settings, ingest_settings.kafka.topic_jobs)
    jobs.poll(2.0)
    jobs.close()
    assert jobs.events == []  # no transcode request for either


def test_malformed_event_goes_to_the_dlq_and_the_flow_keeps_running(
    ingest_settings: Settings, flow: FlowProcess, status: TopicReader, tmp_path: Path
) -> None:
    producer = make_producer(ingest_settings.kafka)
    garbage = b"\x00\x01 definitely not json"
    producer.produce(ingest_settings.kafka.topic_file_events, key=b"bad", value=garbage)
    producer.produce(
        ingest_settings.kafka.topic_uploads, key=b"bad2", value=b'{"type": "upload.completed"}'
    )
    flush_or_raise(producer)

    dlq = TopicReader(ingest_settings, ingest_settings.kafka.topic_dlq)
    letters = dlq.wait_for(lambda es: len(es) >= 2, 30, flow)
    dlq.close()
    by_raw = {e.raw: e for e in letters if isinstance(e, ev.DeadLetter)}
    assert "not a JSON object" in by_raw[garbage].error
    assert by_raw[garbage].source_topic == ingest_settings.kafka.topic_file_events
    assert "missing required field" in by_raw[b'{"type": "upload.completed"}'].error

    data = raw_clip(tmp_path / "after.mkv", seconds=1).read_bytes()
    path = tmp_path / "after-dlq.mkv"
    path.write_bytes(data)
    Writer(ingest_settings, path).announce()
    events = wait_done(status, flow, "after-dlq.mkv")
    assert any(isinstance(e, ev.IngestCompleted) for e in events)


def test_sigkill_and_resume_gives_the_same_manifest(
    ingest_settings: Settings, status: TopicReader, tmp_path: Path
) -> None:
    original = raw_clip(tmp_path / "clip.mkv", seconds=6).read_bytes()  # 17 MB, 4 chunks
    writer = Writer(ingest_settings, tmp_path / "crash.mkv")
    process = FlowProcess("dataflows.ingest_flow", ingest_settings, tmp_path / "flow").start()
    try:
        with writer.path.open("wb") as handle:
            half = len(original) // 2
            handle.write(original[:half])
        writer.announce()
        status.wait_for(lambda es: any(isinstance(e, ev.ChunkStored) for e in es), 60, process)
        time.sleep(1.5)  # let a snapshot include the stored chunk
        process.kill()
        with writer.path.open("ab") as handle:
            handle.write(original[half:])
        writer.announce()
        process.start()
        events = wait_done(status, process, "crash.mkv", timeout=90)
    finally:
        process.stop()
    completed = [e for e in events if isinstance(e, ev.IngestCompleted)]
    assert len({c.manifest.sha256 for c in completed}) == 1
    manifest = completed[0].manifest
    offsets = [c.offset for c in manifest.chunks]
    assert offsets == sorted(set(offsets))  # no chunk lost or listed twice
    assert_source_matches(ingest_settings, completed[0], original)
