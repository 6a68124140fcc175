"""Issue 13, the watch path, on real MinIO (and Kafka, FFmpeg for the flow): a watched file's
bytes are stored once, as the checksummed parts of its source, and a chunk is read back by range.

What the in-process tests cannot show: that the store really refuses a part whose checksum is
wrong, that its composite checksum is the manifest's, and what the bucket holds afterwards.
"""

from __future__ import annotations

import base64
import hashlib
import os
import pickle
import time
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
import urllib3
from minio import Minio
from minio.error import S3Error

from connectors import multipart
from connectors.storage import ensure_bucket, make_client
from core import events as ev
from core.layout import ObjectLayout
from core.settings import MiB, Settings
from dataflows.ingest import logic as ingest_logic
from dataflows.ingest import parts as ingest_parts
from dataflows.ingest.chunking import composite_matches, composite_sha256
from dataflows.ingest.logic import IngestLogic
from dataflows.ingest.state import StreamState
from dataflows.ingest.store import ChunkStore, VerificationError
from dataflows.kafka_io import Outbound
from tests.flows import FlowProcess, TopicReader
from tests.integration.test_ingest_completion import drive, file_event, make_context
from tests.integration.test_ingest_flow import Writer, assert_source_matches, wait_done
from tests.media import raw_clip

pytestmark = pytest.mark.integration


@pytest.fixture
def watch_settings(isolated_settings: Settings, tmp_path: Path) -> Settings:
    """5 MiB chunks, a close that ends the stream, the test's directory as the watched root."""
    ingest = msgspec.structs.replace(
        isolated_settings.ingest, chunk_size=5 * MiB, stream_timeout=8.0, close_is_final=True,
        close_grace=0.5, watch_roots=(str(tmp_path),),
    )  # fmt: skip
    return msgspec.structs.replace(isolated_settings, ingest=ingest)


@pytest.fixture
def client(watch_settings: Settings) -> Minio:
    client = make_client(watch_settings.storage)
    ensure_bucket(client, watch_settings.storage)
    return client


@pytest.fixture
def status(watch_settings: Settings) -> Iterator[TopicReader]:
    reader = TopicReader(watch_settings, watch_settings.kafka.topic_status)
    yield reader
    reader.close()


def bucket_objects(client: Minio, bucket: str) -> dict[str, int]:
    """Every object of the bucket and its size."""
    return {
        str(o.object_name): int(o.size or 0) for o in client.list_objects(bucket, recursive=True)
    }


def test_a_watched_file_is_stored_once_as_its_source_beside_its_manifest(
    watch_settings: Settings, client: Minio, status: TopicReader, tmp_path: Path
) -> None:
    """Issue 13: each chunk was put as ``chunks/{sha256}`` and then copied into the source (two
    copies of every byte). Now the bucket gains the source and its manifest, nothing else."""
    bucket, layout = watch_settings.storage.bucket, ObjectLayout(watch_settings.storage)
    original = raw_clip(tmp_path / "clip.mkv", seconds=6).read_bytes()  # 17 MB, 4 chunks
    before = bucket_objects(client, bucket)
    writer = Writer(watch_settings, tmp_path / "once.mkv")
    process = FlowProcess("dataflows.ingest_flow", watch_settings, tmp_path / "flow").start()
    try:
        half = len(original) // 2
        writer.path.write_bytes(original[:half])  # a file that grows: parts sent as it is read
        writer.announce()
        with writer.path.open("ab") as handle:
            handle.write(original[half:])
        writer.announce(closed=True)
        events = wait_done(status, process, "once.mkv", timeout=90)
        process.assert_running()
    finally:
        process.stop()
    [completed] = [e for e in events if isinstance(e, ev.IngestCompleted)]
    manifest, video = completed.manifest, completed.manifest.video_id
    after = bucket_objects(client, bucket)
    added = {key: size for key, size in after.items() if key not in before}
    # the source, its manifest and the whole-file dedup index's small entry naming the source
    assert set(added) == {
        layout.source(video),
        layout.manifest(video),
        layout.by_sha256(manifest.sha256),
    }
    assert added[layout.source(video)] == len(original)
    assert not [k for k in after if k.startswith(layout.chunk(""))]
    amplification = sum(added.values()) / len(original)
    assert amplification <= 1.02
    assert client._list_multipart_uploads(bucket, prefix=layout.source(video)).uploads == []
    # the manifest: ordered chunks covering the file, composite and whole-file SHA-256
    assert manifest.sha256 == hashlib.sha256(original).hexdigest()
    assert [(c.offset, c.size) for c in manifest.chunks] == [
        (o, min(5 * MiB, len(original) - o)) for o in range(0, len(original), 5 * MiB)
    ]
    assert manifest.composite_sha256 == composite_sha256(
        hashlib.sha256(original[c.offset : c.offset + c.size]).hexdigest() for c in manifest.chunks
    )
    # every chunk comes back by a ranged GET of the source, checked against its digest
    store = ChunkStore(client, bucket, layout)
    for chunk in manifest.chunks:
        assert (
            store.fetch_chunk(manifest.source_key, chunk)
            == original[chunk.offset : chunk.offset + chunk.size]
        )
    forged = msgspec.structs.replace(manifest.chunks[1], sha256="0" * 64)
    with pytest.raises(VerificationError):
        store.fetch_chunk(manifest.source_key, forged)


def test_the_store_refuses_a_part_whose_checksum_is_wrong(
    watch_settings: Settings, client: Minio
) -> None:
    """The pinned MinIO checks ``x-amz-checksum-sha256`` on arrival (not only stores it), and
    completing reports the S3 composite of the parts' digests."""
    bucket, key = watch_settings.storage.bucket, "sources/checksummed/source"
    http = urllib3.PoolManager()
    upload = multipart.create(client, bucket, key, checksummed=True)
    first, last = os.urandom(5 * MiB), os.urandom(1000)
    first_sha, last_sha = (hashlib.sha256(b).hexdigest() for b in (first, last))
    with pytest.raises(S3Error) as refused:
        multipart.put_part(client, http, (bucket, key, upload), 1, first, last_sha)
    assert refused.value.code == "XAmzContentChecksumMismatch"
    assert [p.number for p in multipart.list_stored(client, bucket, key, upload)] == []
    parts = [
        multipart.ChecksummedPart(1, multipart.put_part(
            client, http, (bucket, key, upload), 1, first, first_sha), first_sha),
        multipart.ChecksummedPart(2, multipart.put_part(
            client, http, (bucket, key, upload), 2, last, last_sha), last_sha),
    ]  # fmt: skip
    stored = multipart.complete_checksummed(client, bucket, key, upload, parts)
    raw = hashlib.sha256(bytes.fromhex(first_sha) + bytes.fromhex(last_sha)).digest()
    assert stored == base64.b64encode(raw).decode() + "-2"
    assert composite_matches(stored, composite_sha256([first_sha, last_sha]))
    assert not composite_matches(stored, composite_sha256([last_sha, first_sha]))
    response = client.get_object(bucket, key)
    try:
        assert response.read() == first + last
    finally:
        response.close()
        response.release_conn()


def test_completing_a_source_aborts_the_uploads_a_killed_process_left_on_it(
    watch_settings: Settings, client: Minio
) -> None:
    """A process killed after beginning a source's upload but before a snapshot named it leaves
    that upload open; the resumed stream begins another. Completing sweeps the orphan (its
    parts would otherwise stay in the bucket until the store's stale-upload expiry)."""
    bucket, layout = watch_settings.storage.bucket, ObjectLayout(watch_settings.storage)
    store = ChunkStore(client, bucket, layout)
    data = os.urandom(1000)
    chunk = ev.ChunkRef(index=0, offset=0, size=len(data), sha256=hashlib.sha256(data).hexdigest())
    orphan = store.begin_source("orphaned")
    store.put_part("orphaned", orphan, chunk, data)
    upload = store.begin_source("orphaned")
    etag = store.put_part("orphaned", upload, chunk, data)
    assert set(multipart.open_uploads(client, bucket, layout.source("orphaned"))) == {
        orphan, upload,
    }  # fmt: skip

    key, vouched = store.finish_source("orphaned", upload, [chunk], [etag])

    assert (key, vouched) == (layout.source("orphaned"), True)
    assert multipart.open_uploads(client, bucket, key) == []
    assert store.fetch_chunk(key, chunk) == data


def test_parts_sent_after_the_last_snapshot_are_sent_again_and_overwrite_themselves(
    watch_settings: Settings, client: Minio, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGKILL after parts 2 and 3 were sent but before a snapshot recorded them: the resumed
    stream (from the snapshot naming the upload and part 1) sends them again under the same
    part numbers, in the same upload, and ends with a clean run's manifest and source."""
    monkeypatch.setattr(ingest_logic, "CHUNKS_PER_ACTIVATION", 1)
    monkeypatch.setattr(ingest_parts, "HEAD_WAIT", 60.0)  # each activation records its part
    settings = msgspec.structs.replace(
        watch_settings,
        ingest=msgspec.structs.replace(
            watch_settings.ingest, close_is_final=False, stream_timeout=600.0
        ),
    )
    bucket, layout = settings.storage.bucket, ObjectLayout(settings.storage)
    original = raw_clip(tmp_path / "clip.mkv", seconds=6).read_bytes()  # 17 MB, 4 chunks
    path = tmp_path / "killed.mkv"
    path.write_bytes(original)
    before_kill, after_resume = make_context(settings), make_context(settings)
    try:
        logic = IngestLogic(before_kill, None)
        logic.on_item(file_event(settings, path, 5, ev.FileChanged))  # part 1
        saved = pickle.dumps(logic.snapshot())
        logic.on_notify()  # part 2: never snapshotted
        logic.on_notify()  # part 3: never snapshotted
        state = logic.state
        assert state is not None and len(state.chunks) == 3 and not state.final
        source = layout.source(state.video_id)
        assert multipart.open_uploads(client, bucket, source) == [state.source_upload]
        sent = multipart.list_stored(client, bucket, source, state.source_upload)
        assert [p.number for p in sent] == [1, 2, 3]
        # SIGKILL: the process and its unsnapshotted state are gone; a new one resumes
        resumed_state = pickle.loads(saved)
        assert isinstance(resumed_state, StreamState) and len(resumed_state.chunks) == 1
        resumed = IngestLogic(after_resume, resumed_state)
        resumed.deadline = time.time()  # the stream went quiet: the file's size is final
        out: list[Outbound] = []

        def completed() -> bool:
            return any(isinstance(o.event, ev.IngestCompleted) for o in out)

        assert drive([(resumed, out)], completed, 90)
    finally:
        for ctx in (before_kill, after_resume):
            for pool in (ctx.io, ctx.completing):
                pool.shutdown(wait=False, cancel_futures=True)
    [done] = [o.event for o in out if isinstance(o.event, ev.IngestCompleted)]
    assert [(c.offset, c.size) for c in done.manifest.chunks] == [
        (o, min(5 * MiB, len(original) - o)) for o in range(0, len(original), 5 * MiB)
    ]
    assert_source_matches(settings, done, original)
    assert multipart.open_uploads(client, bucket, source) == []
    assert not [o for o in client.list_objects(bucket, prefix=layout.chunk(""), recursive=True)]
