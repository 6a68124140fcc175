"""A watched stream's parts in flight (``dataflows/ingest/parts.py``), driven in process the way a
Bytewax worker drives the logic, against real MinIO and a real file.

One part's put is held (a slow request) to see what the pipeline does meanwhile: the next parts
go out past the activation's batch (issue 13: a batch used to drain before the next one began),
no more than ``PARTS_IN_FLIGHT`` chunks are read ahead (bounded memory), the state records only
the parts stored in order (a snapshot names no part in flight), and a restart aborts the old
upload only once its parts in flight ended.
"""

from __future__ import annotations

import pickle
import queue
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from connectors import multipart
from connectors.storage import make_client
from core import events as ev
from core.layout import ObjectLayout
from core.settings import MiB, Settings
from dataflows.ingest import logic as ingest_logic
from dataflows.ingest import parts
from dataflows.ingest.logic import IngestContext, IngestLogic
from dataflows.ingest.state import StreamState
from dataflows.kafka_io import Inbound, Outbound
from tests.flows import eventually
from tests.integration.test_ingest_completion import make_context
from tests.integration.test_ingest_flow import assert_source_matches
from tests.media import raw_clip

pytestmark = pytest.mark.integration

HOST = socket.gethostname()


@pytest.fixture
def settings(isolated_settings: Settings, tmp_path: Path) -> Settings:
    ingest = msgspec.structs.replace(
        isolated_settings.ingest, chunk_size=5 * MiB, stream_timeout=600.0, close_is_final=True,
        close_grace=0.5, watch_roots=(str(tmp_path),),
    )  # fmt: skip
    return msgspec.structs.replace(isolated_settings, ingest=ingest)


@pytest.fixture
def ctx(settings: Settings) -> Iterator[IngestContext]:
    context = make_context(settings)
    yield context
    for pool in (context.io, context.completing):
        pool.shutdown(wait=False, cancel_futures=True)


class HeldPut:
    """The store's ``put_part`` held for one chunk until released (a slow request); which
    chunks' puts started, in order."""

    def __init__(self, ctx: IngestContext, index: int) -> None:
        self.real = ctx.store.put_part
        self.index = index
        self.started: list[int] = []
        self.entered = threading.Event()
        self.release = threading.Event()
        ctx.store.put_part = self  # type: ignore[method-assign]

    def __call__(self, video_id: str, upload_id: str, chunk: ev.ChunkRef, data: bytes) -> str:
        self.started.append(chunk.index)
        if chunk.index == self.index and not self.release.is_set():
            self.entered.set()
            assert self.release.wait(120)
        return self.real(video_id, upload_id, chunk, data)


class Worker:
    """One Bytewax worker thread for one key: events in order, the timer in between."""

    def __init__(self, logic: IngestLogic) -> None:
        self.logic = logic
        self.inbox: queue.Queue[Inbound] = queue.Queue()
        self.out: list[Outbound] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                items, _ = self.logic.on_item(self.inbox.get_nowait())
            except queue.Empty:
                if self.logic.state is None:
                    time.sleep(0.01)
                    continue
                items, _ = self.logic.on_notify()
                time.sleep(0.01)
            self.out.extend(items)

    def events(self, kind: type[ev.Event]) -> list[ev.Event]:
        return [o.event for o in list(self.out) if isinstance(o.event, kind)]


@pytest.fixture
def worker(ctx: IngestContext) -> Iterator[Worker]:
    running = Worker(IngestLogic(ctx, None))
    running.thread.start()
    yield running
    running.stop.set()
    running.thread.join(30)


def closed(settings: Settings, path: Path, offset: int) -> Inbound:
    stat = path.stat()
    event = ev.FileClosed(
        id=uuid.uuid4().hex, stream_id=f"{HOST}:{path}", host=HOST, path=str(path),
        size=stat.st_size, mtime=stat.st_mtime, inode=stat.st_ino,
    )  # fmt: skip
    return Inbound(event, settings.kafka.topic_file_events, 0, offset)


def assert_completes_with(settings: Settings, worker: Worker, data: bytes) -> None:
    """The stream ends in ``ingest.completed`` and its source holds exactly ``data``."""
    assert eventually(lambda: bool(worker.events(ev.IngestCompleted)), 90)
    [done] = worker.events(ev.IngestCompleted)
    assert isinstance(done, ev.IngestCompleted)
    assert_source_matches(settings, done, data)


def test_the_next_parts_go_out_while_an_earlier_part_is_in_flight(
    settings: Settings, ctx: IngestContext, worker: Worker, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """Part 2's put is held: parts 3 and 4 (past the two chunks one activation records) are
    read and sent meanwhile, while the state, and so any snapshot, holds only part 1; released,
    the stream completes with the file's bytes."""
    monkeypatch.setattr(ingest_logic, "CHUNKS_PER_ACTIVATION", 2)
    data = raw_clip(tmp_path / "src.mkv", seconds=9).read_bytes()  # 26 MB: 5 chunks
    path = tmp_path / "held.mkv"
    path.write_bytes(data)
    held = HeldPut(ctx, index=1)
    worker.inbox.put(closed(settings, path, 0))
    try:
        assert held.entered.wait(30)
        assert eventually(lambda: {2, 3} <= set(held.started)), held.started
        assert eventually(lambda: worker.logic.state is not None and worker.logic.state.chunks)
        time.sleep(1.0)  # parts 3 and 4 are stored meanwhile, but not recorded before part 2
        state = worker.logic.snapshot()
        resumed = pickle.loads(pickle.dumps(state))
        assert isinstance(resumed, StreamState)
        assert [c.index for c in resumed.chunks] == [0]
        assert len(resumed.part_etags) == 1 and resumed.next_offset == 5 * MiB
    finally:
        held.release.set()
    assert_completes_with(settings, worker, data)


def test_no_more_than_the_parts_in_flight_are_read_ahead(
    settings: Settings, ctx: IngestContext, worker: Worker, tmp_path: Path
) -> None:
    """Part 1's put is held: only ``PARTS_IN_FLIGHT`` chunks are read (bounded memory,
    whatever the file's size), none recorded; released, the stream completes."""
    data = raw_clip(tmp_path / "src.mkv", seconds=13).read_bytes()  # 37 MB: 8 chunks
    path = tmp_path / "bounded.mkv"
    path.write_bytes(data)
    held = HeldPut(ctx, index=0)
    worker.inbox.put(closed(settings, path, 0))
    try:
        assert held.entered.wait(30)
        assert eventually(lambda: len(held.started) == parts.PARTS_IN_FLIGHT)
        time.sleep(1.5)  # time enough for any further read to show
        # the first parts, whichever I/O thread started each first
        assert sorted(held.started) == list(range(parts.PARTS_IN_FLIGHT))
        assert worker.logic.state is not None and worker.logic.state.chunks == []
    finally:
        held.release.set()
    assert_completes_with(settings, worker, data)


def test_a_restart_aborts_the_old_upload_only_after_its_parts_in_flight(
    settings: Settings, ctx: IngestContext, worker: Worker, tmp_path: Path
) -> None:
    """The file shrinks while part 2's put is held: the old upload stays until that put ended
    (an abort under a put in flight could leave a part behind), then it is aborted, and the
    new stream completes with the shrunk file's bytes."""
    data = raw_clip(tmp_path / "src.mkv", seconds=9).read_bytes()
    shorter = raw_clip(tmp_path / "short.mkv", seconds=3).read_bytes()
    path = tmp_path / "shrinks.mkv"
    path.write_bytes(data)
    held = HeldPut(ctx, index=1)
    worker.inbox.put(closed(settings, path, 0))
    client, bucket = make_client(settings.storage), settings.storage.bucket
    layout = ObjectLayout(settings.storage)
    try:
        assert held.entered.wait(30)
        state = worker.logic.state
        assert state is not None
        old_key, old_upload = layout.source(state.video_id), state.source_upload
        with path.open("r+b") as handle:  # the same inode, fewer bytes
            handle.truncate(0)
            handle.write(shorter)
        worker.inbox.put(closed(settings, path, 1))
        assert not eventually(lambda: bool(worker.events(ev.IngestRestarted)), 2.0)
        assert multipart.open_uploads(client, bucket, old_key) == [old_upload]
    finally:
        held.release.set()
    assert eventually(lambda: bool(worker.events(ev.IngestCompleted)), 90)
    assert worker.events(ev.IngestRestarted)
    assert multipart.open_uploads(client, bucket, old_key) == []
    [done] = worker.events(ev.IngestCompleted)
    assert isinstance(done, ev.IngestCompleted)
    assert done.manifest.source_key != old_key
    assert_source_matches(settings, done, shorter)
