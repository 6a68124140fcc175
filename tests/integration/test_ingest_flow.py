"""The ingest dataflow on real Kafka, MinIO and FFmpeg, run as a child process like production.

File events are produced here directly (the watcher has its own tests), with a stream timeout of
two seconds and 5 MiB chunks, so an 11 MB clip makes three chunks. The flow's stateful logic on
one and two workers (chunking as a file grows, completion, versions, a replaced or shrunk file,
deduplication, dead letters) is tested in process in ``tests/inprocess/test_ingest_flow.py``;
what stays here is what only the real services show: Kafka offsets and recovery after SIGKILL,
S3 multipart semantics, a cluster of processes, and what hostile producers can send.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import socket
import sqlite3
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from connectors import multipart
from connectors.kafka import flush_or_raise, make_producer, produce_event
from connectors.storage import make_client
from core import events as ev
from core.errors import is_public
from core.ids import upload_video_id
from core.layout import OWNER_METADATA, ObjectLayout
from core.names import display_filename
from core.settings import MiB, Settings
from tests.flows import FlowProcess, TopicReader, eventually, flow_cluster, stop_all
from tests.media import raw_clip, write_in_pieces

pytestmark = pytest.mark.integration

TIMEOUT = 2.0
HOST = socket.gethostname()


@pytest.fixture
def ingest_settings(isolated_settings: Settings, tmp_path: Path) -> Settings:
    """Small chunks, a short timeout, and the test's directory as the one watched root."""
    ingest = msgspec.structs.replace(
        isolated_settings.ingest, chunk_size=5 * MiB, stream_timeout=TIMEOUT,
        close_is_final=False, watch_roots=(str(tmp_path),),
    )  # fmt: skip
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
        stop_all(processes)  # a cluster's processes together: one alone waits for its peers


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

    def announce(self, *, closed: bool = False) -> None:
        stat = self.path.stat()
        kind = ev.FileClosed if closed else ev.FileChanged
        event = kind(
            id=uuid.uuid4().hex, stream_id=self.stream_id, host=HOST, path=str(self.path),
            size=stat.st_size, mtime=stat.st_mtime, inode=stat.st_ino,
        )  # fmt: skip
        produce_event(self.producer, self.settings.kafka.topic_file_events, event)
        flush_or_raise(self.producer)

    def write_in_pieces(self, data: bytes, pieces: int, pause: float) -> None:
        write_in_pieces(self.path, data, pieces, pause, after_each=self.announce)


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
    video = video_of(status.events, filename)

    def ended(events: list[ev.AnyEvent]) -> bool:
        """The stream's last event: what the flow writes with ``ingest.completed`` (from the
        same callback), ``probe.completed`` or the probe's ``job.failed``, or a failure."""
        last = (ev.ProbeCompleted, ev.JobFailed)
        return any(isinstance(e, last) for e in events_of(events, video))

    status.wait_for(ended, timeout, flow)  # was a fixed 1.5 s after the terminal event
    status.poll(0.3)
    return events_of(status.events, video)


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


# one and two workers in one process: tests/inprocess/test_ingest_flow.py; here the cluster
@pytest.mark.parametrize("flow", ["cluster"], indirect=True, ids=["2-processes"])
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
    # issue 13: the uploaded object is the source (read by ranges, never copied)
    assert completed.manifest.source_key == key


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
    # issue 9, obs. 7: ffprobe named its input, a presigned URL with credentials
    assert is_public(failed.reason), failed.reason
    assert "X-Amz" not in failed.reason and "http" not in failed.reason
    jobs = TopicReader(ingest_settings, ingest_settings.kafka.topic_jobs)
    jobs.poll(2.0)
    jobs.close()
    assert jobs.events == []  # no transcode request for either


def test_sigkill_and_resume_gives_the_same_manifest(
    ingest_settings: Settings, status: TopicReader, tmp_path: Path
) -> None:
    original = raw_clip(tmp_path / "clip.mkv", seconds=6).read_bytes()  # 17 MB, 4 chunks
    # the stream must still be open at the kill: completing by its timeout first would make the
    # rest of the file a new version and test something else
    ingest_settings = with_ingest(ingest_settings, stream_timeout=8.0)
    writer = Writer(ingest_settings, tmp_path / "crash.mkv")
    process = FlowProcess("dataflows.ingest_flow", ingest_settings, tmp_path / "flow").start()
    try:
        with writer.path.open("wb") as handle:
            half = len(original) // 2
            handle.write(original[:half])
        writer.announce()
        status.wait_for(lambda es: any(isinstance(e, ev.ChunkStored) for e in es), 60, process)
        # a snapshot includes the stored chunk (was a 1.5 s sleep for one to be taken)
        assert eventually(lambda: snapshotted(process.recovery, writer.stream_id, "chunks"))
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
    assert len({e.video_id for e in status.events if isinstance(e, ev.IngestStarted)}) == 1
    manifest = completed[0].manifest
    offsets = [c.offset for c in manifest.chunks]
    assert offsets == sorted(set(offsets))  # no chunk lost or listed twice
    assert_source_matches(ingest_settings, completed[0], original)
    assert_stored_once(ingest_settings, manifest, len(original))


def assert_stored_once(settings: Settings, manifest: ev.Manifest, size: int) -> None:
    """A clean run's manifest (whole chunks, the last short), the source object and the manifest
    only (no ``chunks/`` objects), and no multipart upload left open for it."""
    chunk = settings.ingest.chunk_size
    assert [(c.offset, c.size) for c in manifest.chunks] == [
        (o, min(chunk, size - o)) for o in range(0, size, chunk)
    ]
    layout, client = ObjectLayout(settings.storage), make_client(settings.storage)
    keys = stored_keys(settings)
    assert not [k for k in keys if k.startswith(layout.chunk(""))]
    assert {layout.source(manifest.video_id), layout.manifest(manifest.video_id)} <= keys
    source = layout.source(manifest.video_id)
    assert client.stat_object(settings.storage.bucket, source).size == size
    assert client._list_multipart_uploads(settings.storage.bucket, prefix=source).uploads == []


def with_ingest(settings: Settings, **fields: object) -> Settings:
    """``settings`` with some ingest fields changed (a longer timeout, close-is-final...)."""
    ingest = msgspec.structs.replace(settings.ingest, **fields)
    return msgspec.structs.replace(settings, ingest=ingest)


def put_upload(settings: Settings, data: bytes | None, filename: str) -> ev.UploadCompleted:
    """Put ``data`` into ``incoming/`` (or nothing, for a missing object); its announcement."""
    upload_id = uuid.uuid4().hex
    key = ObjectLayout(settings.storage).incoming(upload_id)
    if data is not None:
        client = make_client(settings.storage)
        client.put_object(settings.storage.bucket, key, io.BytesIO(data), len(data))
    return ev.UploadCompleted(
        id=uuid.uuid4().hex, upload_id=upload_id, bucket=settings.storage.bucket, key=key,
        size=len(data) if data is not None else 1234, filename=filename, owner="alice",
    )  # fmt: skip


def announce_upload(settings: Settings, event: ev.UploadCompleted) -> None:
    produce_raw(settings, settings.kafka.topic_uploads, event)


def test_upload_of_a_missing_object_fails_with_a_reason_and_the_flow_keeps_running(
    ingest_settings: Settings, flow: FlowProcess, status: TopicReader, tmp_path: Path
) -> None:
    announce_upload(ingest_settings, put_upload(ingest_settings, None, "ghost.mkv"))
    events = wait_done(status, flow, "ghost.mkv")
    failed = next(e for e in events if isinstance(e, ev.JobFailed))
    assert failed.stage == "ingest"
    assert "cannot be read" in failed.reason and "NoSuchKey" in failed.reason

    data = raw_clip(tmp_path / "good.mkv", seconds=1).read_bytes()
    path = tmp_path / "after-ghost.mkv"
    path.write_bytes(data)
    Writer(ingest_settings, path).announce()
    events = wait_done(status, flow, "after-ghost.mkv")
    completed = next(e for e in events if isinstance(e, ev.IngestCompleted))
    assert_source_matches(ingest_settings, completed, data)


def test_an_unreadable_local_file_is_refused_at_once_with_a_reason(
    ingest_settings: Settings, flow: FlowProcess, status: TopicReader, tmp_path: Path
) -> None:
    # a path that cannot be read as a file (a directory): not 300 s of storage retries and no
    # video, a dead letter at once that says why without naming the path
    directory = tmp_path / "not-a-file.mkv"
    directory.mkdir()
    started = time.monotonic()
    Writer(ingest_settings, directory).announce()
    dlq = TopicReader(ingest_settings, ingest_settings.kafka.topic_dlq)
    letters = dlq.wait_for(lambda es: len(es) >= 1, 30, flow)
    dlq.close()
    assert time.monotonic() - started < 30
    letter = letters[0]
    assert isinstance(letter, ev.DeadLetter) and letter.stage == "admit"
    assert "directory" in letter.error and is_public(letter.error)
    status.poll(1.0)
    assert not any(isinstance(e, ev.IngestStarted) for e in status.events)


def test_an_upload_announced_twice_is_one_video_named_by_its_upload_id(
    ingest_settings: Settings, flow: FlowProcess, status: TopicReader, tmp_path: Path
) -> None:
    data = raw_clip(tmp_path / "twice.mkv", seconds=1).read_bytes()
    event = put_upload(ingest_settings, data, "twice.mkv")
    announce_upload(ingest_settings, event)
    # a producer retrying after a flush timeout: the same announcement lands at a later offset
    announce_upload(ingest_settings, event)
    events = wait_done(status, flow, "twice.mkv")
    assert any(isinstance(e, ev.IngestCompleted) for e in events)
    status.poll(3.0)
    started = [
        e for e in status.events if isinstance(e, ev.IngestStarted) and e.filename == "twice.mkv"
    ]
    assert {e.video_id for e in started} == {upload_video_id(event.upload_id)}
    completed = [e for e in status.events if isinstance(e, ev.IngestCompleted)]
    assert {e.video_id for e in completed} == {upload_video_id(event.upload_id)}
    assert len({e.manifest.source_key for e in completed}) == 1


def test_an_event_of_another_family_goes_to_the_dlq_with_its_raw_bytes(
    ingest_settings: Settings, flow: FlowProcess, tmp_path: Path
) -> None:
    stray = ev.JobFailed(
        id=uuid.uuid4().hex, video_id="v1", run="ingest:v1", seq=1, reason="x", stage="ingest"
    )
    on_file_events = ev.encode(stray)
    upload = put_upload(ingest_settings, b"x", "wrong-topic.mkv")
    on_uploads = ev.encode(
        ev.FileChanged(id=uuid.uuid4().hex, stream_id="h:/a", host="h", path="/a", size=1, mtime=0)
    )
    producer = make_producer(ingest_settings.kafka)
    producer.produce(ingest_settings.kafka.topic_file_events, key=b"v1", value=on_file_events)
    producer.produce(ingest_settings.kafka.topic_uploads, key=b"h:/a", value=on_uploads)
    # an upload.completed on the file-events topic is of the wrong family too
    producer.produce(ingest_settings.kafka.topic_file_events, key=b"u", value=ev.encode(upload))
    flush_or_raise(producer)

    dlq = TopicReader(ingest_settings, ingest_settings.kafka.topic_dlq)
    letters = dlq.wait_for(lambda es: len(es) >= 3, 30, flow)
    dlq.close()
    by_raw = {e.raw: e for e in letters if isinstance(e, ev.DeadLetter)}
    assert set(by_raw) == {on_file_events, on_uploads, ev.encode(upload)}
    assert "does not belong on the file-events topic" in by_raw[on_file_events].error
    assert by_raw[on_file_events].source_topic == ingest_settings.kafka.topic_file_events
    assert "does not belong on the uploads topic" in by_raw[on_uploads].error
    assert by_raw[on_uploads].source_topic == ingest_settings.kafka.topic_uploads
    flow.assert_running()


def test_a_multipart_source_lost_while_the_flow_was_down_is_sent_again(
    ingest_settings: Settings, status: TopicReader, tmp_path: Path
) -> None:
    """The snapshot still names a multipart upload the store no longer knows (aborted, or
    expired as stale): the resumed stream reads and sends its bytes again in a new upload."""
    original = raw_clip(tmp_path / "clip.mkv", seconds=6).read_bytes()  # 17 MB, 4 chunks
    # the half-written stream must still be open at the kill, not completed by its timeout
    ingest_settings = with_ingest(ingest_settings, stream_timeout=8.0)
    writer = Writer(ingest_settings, tmp_path / "lost-upload.mkv")
    process = FlowProcess("dataflows.ingest_flow", ingest_settings, tmp_path / "flow").start()
    client = make_client(ingest_settings.storage)
    bucket = ingest_settings.storage.bucket
    try:
        half = len(original) // 2
        writer.path.write_bytes(original[:half])
        writer.announce()
        status.wait_for(lambda es: any(isinstance(e, ev.ChunkStored) for e in es), 60, process)
        # a snapshot includes the stored chunk and the open upload (was a 1.5 s sleep)
        assert eventually(lambda: snapshotted(process.recovery, writer.stream_id, "chunks"))
        assert snapshotted(process.recovery, writer.stream_id, "source_upload")
        process.kill()
        # MinIO lists the uploads of one exact key
        source = ObjectLayout(ingest_settings.storage).source(
            video_of(status.events, "lost-upload.mkv")
        )
        open_uploads = client._list_multipart_uploads(bucket, prefix=source).uploads
        assert open_uploads, "the flow sends its source as a multipart upload"
        for upload in open_uploads:  # as if completed, or expired as stale
            assert upload.object_name and upload.upload_id
            multipart.abort(client, bucket, upload.object_name, upload.upload_id)
        with writer.path.open("ab") as handle:
            handle.write(original[half:])
        writer.announce()
        process.start()
        events = wait_done(status, process, "lost-upload.mkv", timeout=90)
        process.assert_running()
    finally:
        process.stop()
    assert not any(isinstance(e, ev.JobFailed) for e in events)
    completed = [e for e in events if isinstance(e, ev.IngestCompleted)]
    assert completed
    assert_source_matches(ingest_settings, completed[-1], original)
    assert_stored_once(ingest_settings, completed[-1].manifest, len(original))


def snapshotted(recovery: Path, stream_id: str, field: str) -> bool:
    """Whether the newest snapshot of ``stream_id``'s ingest state (Bytewax pickles it) has
    ``field`` set: a stored chunk, an open upload, taken before a kill so it is resumed."""
    newest: tuple[int, bytes] | None = None
    for part in recovery.glob("part-*.sqlite3"):
        with sqlite3.connect(part) as db:
            rows = db.execute(
                "SELECT snap_epoch, ser_change FROM snaps WHERE state_key = ?"
                " AND step_id LIKE '%ingest%' AND step_id NOT LIKE '%read%'"
                " AND ser_change IS NOT NULL",
                (stream_id,),
            ).fetchall()
        for epoch, change in rows:
            if newest is None or epoch > newest[0]:
                newest = (epoch, change)
    return newest is not None and bool(getattr(pickle.loads(newest[1]), field))


def retained_streams(recovery: Path) -> set[str]:
    """Keys whose newest snapshot of the ingest step holds state (a discard is a NULL row)."""
    kept: set[str] = set()
    for part in recovery.glob("part-*.sqlite3"):
        with sqlite3.connect(part) as db:
            rows = db.execute(
                "SELECT state_key FROM snaps AS s WHERE step_id LIKE '%ingest%'"
                " AND step_id NOT LIKE '%read%' AND ser_change IS NOT NULL AND snap_epoch = ("
                " SELECT max(snap_epoch) FROM snaps"
                " WHERE step_id = s.step_id AND state_key = s.state_key)"
            ).fetchall()
        kept.update(key for (key,) in rows)
    return kept


def test_file_closed_completes_at_once_and_no_state_is_kept_after(
    ingest_settings: Settings, status: TopicReader, tmp_path: Path
) -> None:
    # nothing is written after the close: its grace (2 s by default) need not be long
    settings = with_ingest(
        ingest_settings, stream_timeout=60.0, close_is_final=True, close_grace=0.5
    )
    data = raw_clip(tmp_path / "closed-src.mkv", seconds=4).read_bytes()  # 11 MB
    writer = Writer(settings, tmp_path / "closed.mkv")
    flow = FlowProcess("dataflows.ingest_flow", settings, tmp_path / "flow")
    with flow:
        with writer.path.open("wb") as handle:
            half = len(data) // 2
            handle.write(data[:half])
            handle.flush()
            writer.announce()  # still being written: the stream must stay open
            status.wait_for(lambda es: any(isinstance(e, ev.ChunkStored) for e in es), 30, flow)
            # the stream is retained in a snapshot while it is open (snapshots every second)
            assert eventually(lambda: writer.stream_id in retained_streams(flow.recovery))
            handle.write(data[half:])
        closed_at = time.monotonic()
        writer.announce(closed=True)
        events = wait_done(status, flow, "closed.mkv", timeout=30)
        assert time.monotonic() - closed_at < 20  # well before the 60 s stream timeout
        completed = next(e for e in events if isinstance(e, ev.IngestCompleted))
        assert_source_matches(settings, completed, data)
        # snapshots every second: the discard reaches the recovery store
        assert eventually(lambda: writer.stream_id not in retained_streams(flow.recovery))
    assert writer.stream_id not in retained_streams(flow.recovery)

    # a resumed flow has nothing to finish: no event for the video comes again, by the time it
    # has read a refused file event sent on every partition after it started (what it had to
    # redo, it meets first on the partition) and a second more
    seen = len(events_of(status.events, completed.video_id))
    with flow:
        passwd = Path("/etc/passwd")
        for partition in range(settings.kafka.partitions):
            announce_file(settings, passwd, passwd.stat().st_size, partition=partition)
        letters = dead_letters(settings, settings.kafka.partitions, flow, timeout=60)
        assert {letter.partition for letter in letters} == set(range(settings.kafka.partitions))
        status.poll(1.0)
        flow.assert_running()
    assert all("outside the watched roots" in letter.error for letter in letters)
    assert len(events_of(status.events, completed.video_id)) == seen


# ---------------------------------------------------------------- issue 9: trust boundaries


def announce_file(
    settings: Settings,
    path: Path | str,
    size: int,
    *,
    inode: int = 0,
    stream_id: str = "",
    partition: int | None = None,
) -> None:
    """A ``file.closed`` for ``path`` with any declared size, as a hostile producer sends it
    (on ``partition`` if given, else where its key goes)."""
    event = ev.FileClosed(
        id=uuid.uuid4().hex, stream_id=stream_id or f"{HOST}:{path}", host=HOST, path=str(path),
        size=size, mtime=time.time(), inode=inode,
    )  # fmt: skip
    produce_raw(settings, settings.kafka.topic_file_events, event, partition)


def produce_raw(
    settings: Settings, topic: str, event: ev.Event, partition: int | None = None
) -> None:
    """Write ``event`` as a hostile producer would: its JSON as is, without the contract's
    bounds check that ``ev.encode`` (and every vidflow producer) applies before sending."""
    producer = make_producer(settings.kafka)
    key, value = event.partition_key.encode(), msgspec.json.encode(event)
    if partition is None:
        producer.produce(topic, key=key, value=value)
    else:
        producer.produce(topic, key=key, value=value, partition=partition)
    flush_or_raise(producer)


def dead_letters(
    settings: Settings, count: int, flow: FlowProcess, timeout: float = 30
) -> list[ev.DeadLetter]:
    dlq = TopicReader(settings, settings.kafka.topic_dlq)
    try:
        letters = dlq.wait_for(lambda es: len(es) >= count, timeout, flow)
        dlq.poll(1.0)  # and nothing more than expected
    finally:
        dlq.close()
    return [e for e in letters if isinstance(e, ev.DeadLetter)]


def stored_keys(settings: Settings) -> set[str]:
    client = make_client(settings.storage)
    return {
        str(o.object_name) for o in client.list_objects(settings.storage.bucket, recursive=True)
    }


def test_file_events_beyond_the_watched_roots_are_dead_letters_and_the_flow_goes_on(
    ingest_settings: Settings, flow: FlowProcess, status: TopicReader, tmp_path: Path
) -> None:
    """Issue 9, obs. 1 and 10: /etc/passwd, a link out of the root, a FIFO (which blocked the
    read forever), a declared size of 2**63 and a lie about the size are all refused; nothing is
    stored for them, no video starts, and a good file sent after them completes."""
    passwd = Path("/etc/passwd")
    (tmp_path / "escape.mkv").symlink_to(passwd)
    os.mkfifo(tmp_path / "pipe.mkv")
    small = tmp_path / "small.mkv"
    small.write_bytes(b"0123456789")
    started = time.monotonic()
    announce_file(ingest_settings, passwd, passwd.stat().st_size)
    announce_file(ingest_settings, tmp_path / "escape.mkv", passwd.stat().st_size)
    announce_file(ingest_settings, tmp_path / "pipe.mkv", 6 * MiB)
    announce_file(ingest_settings, small, 2**63)
    announce_file(ingest_settings, small, 11 * MiB)  # more than the file has
    # a stream id that is not the path's: the event would feed another stream's state
    announce_file(ingest_settings, small, 10, stream_id=f"{HOST}:{tmp_path}/other.mkv")
    good = raw_clip(tmp_path / "src.mkv", seconds=1).read_bytes()
    after = tmp_path / "after-refusals.mkv"
    after.write_bytes(good)
    Writer(ingest_settings, after).announce()

    letters = dead_letters(ingest_settings, 6, flow)
    assert time.monotonic() - started < 30
    assert len(letters) == 6
    assert all(letter.stage in ("decode", "admit") for letter in letters)
    assert all(is_public(letter.error) for letter in letters)
    by_path = {msgspec.json.decode(letter.raw)["path"]: letter.error for letter in letters}
    assert "outside the watched roots" in by_path[str(passwd)]
    assert "outside the watched roots" in by_path[str(tmp_path / "escape.mkv")]
    assert "FIFO" in by_path[str(tmp_path / "pipe.mkv")]
    errors = [letter.error for letter in letters]
    assert any("over the limit" in e or "$.size" in e for e in errors)  # 2**63
    assert any("more than the file has" in e for e in errors)
    assert any("stream id" in e for e in errors)

    events = wait_done(status, flow, "after-refusals.mkv", timeout=60)
    completed = next(e for e in events if isinstance(e, ev.IngestCompleted))
    assert_source_matches(ingest_settings, completed, good)
    started_names = {e.filename for e in status.events if isinstance(e, ev.IngestStarted)}
    assert started_names == {"after-refusals.mkv"}
    # nothing of the refused files was stored: the bucket holds the good video's source and
    # manifest and its dedup index entry only (chunks are parts of a source, never objects)
    layout = ObjectLayout(ingest_settings.storage)
    video, sha256 = completed.manifest.video_id, completed.manifest.sha256
    assert stored_keys(ingest_settings) == {
        layout.source(video),
        layout.manifest(video),
        layout.by_sha256(sha256),
    }


def test_uploads_naming_any_key_but_their_own_incoming_one_are_dead_letters(
    ingest_settings: Settings, flow: FlowProcess, status: TopicReader, tmp_path: Path
) -> None:
    """Issue 9, obs. 2: an upload.completed naming another user's source, a chunk, another
    upload's incoming key or another bucket gave the sender a copy of someone else's video."""
    client = make_client(ingest_settings.storage)
    bucket = ingest_settings.storage.bucket
    layout = ObjectLayout(ingest_settings.storage)
    data = raw_clip(tmp_path / "victim.mkv", seconds=1).read_bytes()
    victim_source = layout.source("victimvideo")
    chunk = layout.chunk(hashlib.sha256(data).hexdigest())
    victim = put_upload(ingest_settings, data, "victim-upload.mkv")  # not announced by anyone
    for key in (victim_source, chunk):
        client.put_object(bucket, key, io.BytesIO(data), len(data))

    def forged(key: str, **fields: object) -> ev.UploadCompleted:
        event = ev.UploadCompleted(
            id=uuid.uuid4().hex, upload_id=uuid.uuid4().hex, bucket=bucket, key=key,
            size=len(data), filename="stolen.mkv", owner="mallory",
        )  # fmt: skip
        return msgspec.structs.replace(event, **fields)

    own = put_upload(ingest_settings, data, "size-lie.mkv")
    attempts = [
        forged(victim_source),
        forged(chunk),
        forged(victim.key),  # another upload's incoming key, under a new upload id
        forged(victim.key, upload_id=victim.upload_id, bucket="someone-elses"),
        forged(layout.incoming("../sources/victimvideo"), upload_id="../sources/victimvideo"),
        msgspec.structs.replace(own, size=len(data) + 1),  # the size is the object's
    ]
    for attempt in attempts:
        announce_upload(ingest_settings, attempt)

    letters = dead_letters(ingest_settings, len(attempts), flow)
    assert len(letters) == len(attempts)
    assert all(letter.stage in ("decode", "admit") for letter in letters)
    assert all(is_public(letter.error) for letter in letters)
    errors = sorted(letter.error for letter in letters)
    assert sum("not the incoming key" in e for e in errors) == 3, errors
    assert sum("bucket" in e for e in errors) == 1, errors
    assert sum("upload id" in e or "$.upload_id" in e for e in errors) == 1, errors
    assert sum("not the object's" in e for e in errors) == 1, errors
    status.poll(2.0)
    assert not [e for e in status.events if isinstance(e, ev.IngestStarted)]
    assert not [k for k in stored_keys(ingest_settings) if k.startswith("sources/")
                and k != victim_source]  # fmt: skip


def test_an_uploads_owner_comes_from_its_object_not_from_the_event(
    ingest_settings: Settings, flow: FlowProcess, status: TopicReader, tmp_path: Path
) -> None:
    """Issue 9: the owner is the authenticated creator's (object metadata written by the portal
    or ``vidflow submit``), else the producer principal's configured owner; never ``owner``."""
    client = make_client(ingest_settings.storage)
    data = raw_clip(tmp_path / "owned.mkv", seconds=1).read_bytes()
    alice = put_upload(ingest_settings, None, "alices.mkv")
    client.put_object(
        ingest_settings.storage.bucket, alice.key, io.BytesIO(data), len(data),
        metadata={OWNER_METADATA: "alice"},
    )  # fmt: skip
    alice = msgspec.structs.replace(alice, size=len(data), owner="mallory")
    anonymous = msgspec.structs.replace(put_upload(ingest_settings, data, "anon.mkv"), owner="bob")
    # issue 9, obs. 10: a 200 KB name with a bidi override is shown bounded and without it
    # (the contract bounds names at 255: the event is a dead letter; names a person gives are
    # cleaned and bounded before they are sent, display_filename)
    huge_name = "\u202e" + "n" * 200_000 + ".mkv"
    huge = put_upload(ingest_settings, data, huge_name)
    shown = display_filename(huge_name)
    assert len(shown) == 255 and "\u202e" not in shown
    for event in (alice, anonymous, huge):
        announce_upload(ingest_settings, event)
    for name in ("alices.mkv", "anon.mkv"):
        wait_done(status, flow, name)
    owners = {e.filename: e.owner for e in status.events if isinstance(e, ev.IngestStarted)}
    assert owners == {"alices.mkv": "alice", "anon.mkv": "producer"}
    [letter] = dead_letters(ingest_settings, 1, flow)
    assert letter.stage == "decode" and "$.filename" in letter.error and len(letter.error) < 300
    jobs = TopicReader(ingest_settings, ingest_settings.kafka.topic_jobs)
    requests = jobs.wait_for(lambda es: len(es) >= 2, 20)
    jobs.close()
    assert {r.filename: r.owner for r in requests if isinstance(r, ev.TranscodeRequested)} == {
        "alices.mkv": "alice", "anon.mkv": "producer"
    }  # fmt: skip
