"""A stream's completion (complete the source, manifest, ffprobe) leaves the worker
thread: the stream logic is driven in-process the way a Bytewax worker drives it (one thread
calling ``on_item`` and ``on_notify`` of every key), against real MinIO and FFmpeg.

The first stream's completion is held at its first storage call (a slow store); meanwhile the
second stream must go from its first event to ``transcode.requested``, an event for the first
stream must wait in its state (and survive a snapshot), and a snapshot taken mid-completion
must resume (as after a SIGKILL) and complete the same source.
"""

from __future__ import annotations

import pickle
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import msgspec
import pytest

from connectors.storage import ensure_bucket, make_client
from core import events as ev
from core.ids import video_id_for
from core.layout import ObjectLayout
from core.settings import MiB, Settings
from dataflows.ingest.logic import IngestContext, IngestLogic
from dataflows.ingest.state import StreamState
from dataflows.ingest.store import ChunkStore
from dataflows.kafka_io import Inbound, Outbound
from tests.integration.test_ingest_flow import assert_source_matches
from tests.media import raw_clip

pytestmark = pytest.mark.integration

HOST = socket.gethostname()


@pytest.fixture
def settings(isolated_settings: Settings, tmp_path: Path) -> Settings:
    ingest = msgspec.structs.replace(
        isolated_settings.ingest, chunk_size=5 * MiB, stream_timeout=1.0, close_is_final=True,
        watch_roots=(str(tmp_path),),
    )  # fmt: skip
    return msgspec.structs.replace(isolated_settings, ingest=ingest)


def make_context(settings: Settings) -> IngestContext:
    client = make_client(settings.storage)
    ensure_bucket(client, settings.storage)
    store = ChunkStore(client, settings.storage.bucket, ObjectLayout(settings.storage))
    return IngestContext(settings, store)


@pytest.fixture
def ctx(settings: Settings) -> Iterator[IngestContext]:
    context = make_context(settings)
    yield context
    for pool in (context.io, context.completing):
        pool.shutdown(wait=False, cancel_futures=True)


class HeldFinish:
    """The store's ``finish_source`` held for one video until released (a slow store)."""

    def __init__(self, ctx: IngestContext) -> None:
        self.real = ctx.store.finish_source
        self.video = ""
        self.entered = threading.Event()
        self.release = threading.Event()
        self.abandon = False
        ctx.store.finish_source = self  # type: ignore[method-assign]

    def __call__(
        self, video_id: str, upload_id: str, chunks: list[ev.ChunkRef], etags: list[str]
    ) -> tuple[str, bool]:
        if video_id == self.video:
            self.entered.set()
            assert self.release.wait(120)
            if self.abandon:  # the process this thread belongs to was killed
                raise RuntimeError("killed")
        return self.real(video_id, upload_id, chunks, etags)


def file_event(
    settings: Settings, path: Path, offset: int, kind: type[ev.FileChanged | ev.FileClosed]
) -> Inbound:
    stat = path.stat()
    event = kind(
        id=uuid.uuid4().hex, stream_id=f"{HOST}:{path}", host=HOST, path=str(path),
        size=stat.st_size, mtime=stat.st_mtime, inode=stat.st_ino,
    )  # fmt: skip
    return Inbound(event, settings.kafka.topic_file_events, 0, offset)


def video_of(settings: Settings, path: Path, offset: int) -> str:
    """The video a stream started by the event at ``offset`` becomes."""
    return video_id_for(f"{HOST}:{path}", settings.kafka.topic_file_events, 0, offset)


def events(out: list[Outbound]) -> list[ev.Event]:
    return [o.event for o in out]


def drive(
    keys: list[tuple[IngestLogic, list[Outbound]]], until: Callable[[], bool], timeout: float
) -> bool:
    """One worker's loop: each key's timer, in turn, until ``until`` holds (or the timeout)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if until():
            return True
        for logic, out in keys:
            if not logic.done and logic.state is not None:
                items, _ = logic.on_notify()
                out.extend(items)
        time.sleep(0.02)
    return until()


def in_thread(work: Callable[[], None]) -> threading.Thread:
    """The worker runs in a thread of its own: a worker blocked by a completion (the fault
    these tests catch) makes them fail on a timeout instead of hanging."""
    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread


def test_a_second_stream_completes_while_the_first_one_is_completing(
    settings: Settings, ctx: IngestContext, tmp_path: Path
) -> None:
    first_data = raw_clip(tmp_path / "a-src.mkv", seconds=2).read_bytes()
    second_data = raw_clip(tmp_path / "b-src.mkv", seconds=1).read_bytes()
    first, second = tmp_path / "first.mkv", tmp_path / "second.mkv"
    first.write_bytes(first_data)
    second.write_bytes(second_data)
    held = HeldFinish(ctx)
    logic_a, logic_b = IngestLogic(ctx, None), IngestLogic(ctx, None)
    out_a: list[Outbound] = []
    out_b: list[Outbound] = []
    second_done = threading.Event()

    def worker() -> None:
        items, _ = logic_a.on_item(file_event(settings, first, 1, ev.FileClosed))
        out_a.extend(items)
        items, _ = logic_b.on_item(file_event(settings, second, 2, ev.FileClosed))
        out_b.extend(items)
        if drive([(logic_a, out_a), (logic_b, out_b)], lambda: logic_b.done, 60):
            second_done.set()

    held.video = video_of(settings, first, 1)
    thread = in_thread(worker)
    try:
        assert held.entered.wait(60), "the first stream never started completing"
        assert second_done.wait(60), "the second stream did not complete beside the first"
        produced = events(out_b)
        assert any(isinstance(e, ev.IngestCompleted) for e in produced)
        assert any(isinstance(e, ev.ProbeCompleted) for e in produced)
        assert any(isinstance(e, ev.TranscodeRequested) for e in produced)
        assert not any(isinstance(e, ev.IngestCompleted) for e in events(out_a))
        assert not logic_a.done and logic_a.completion is not None
    finally:
        held.release.set()
        thread.join(60)
    assert drive([(logic_a, out_a)], lambda: logic_a.done, 60)
    completed = [e for e in events(out_a) if isinstance(e, ev.IngestCompleted)]
    assert len(completed) == 1
    assert_source_matches(settings, completed[0], first_data)
    second_completed = next(e for e in events(out_b) if isinstance(e, ev.IngestCompleted))
    assert_source_matches(settings, second_completed, second_data)


def test_an_event_during_completion_waits_and_a_killed_completion_resumes(
    settings: Settings, ctx: IngestContext, tmp_path: Path
) -> None:
    """The file grows while its stream completes: the event waits in the state, which a
    snapshot keeps; the process is killed mid-completion; the resumed stream completes the
    same source, then the waiting event starts a new video with the whole file."""
    original = raw_clip(tmp_path / "src.mkv", seconds=2).read_bytes()
    more = raw_clip(tmp_path / "more.mkv", seconds=1).read_bytes()
    path = tmp_path / "growing.mkv"
    path.write_bytes(original)
    held = HeldFinish(ctx)
    logic = IngestLogic(ctx, None)
    out: list[Outbound] = []
    closed = file_event(settings, path, 10, ev.FileClosed)
    held.video = first_video = video_of(settings, path, 10)
    snapshots: list[bytes] = []

    def worker() -> None:
        out.extend(logic.on_item(closed)[0])
        # a close is a hint: the stream completes at its timer once the close grace is over
        # and the file is a whole video (ingest/closing.py), as Bytewax calls on_notify
        waited = time.monotonic() + 30
        while logic.completion is None and time.monotonic() < waited:
            time.sleep(0.05)
            out.extend(logic.on_notify()[0])
        with path.open("ab") as handle:
            handle.write(more)
        items, _ = logic.on_item(file_event(settings, path, 11, ev.FileChanged))
        out.extend(items)
        snapshots.append(pickle.dumps(logic.snapshot()))

    thread = in_thread(worker)
    try:
        assert held.entered.wait(60), "the stream never started completing"
        thread.join(10)
        assert not thread.is_alive(), "an event for a completing stream blocked the worker"
        assert not any(isinstance(e, ev.IngestCompleted) for e in events(out))
        saved = pickle.loads(snapshots[0])
        assert isinstance(saved, StreamState) and saved.video_id == first_video
        assert [v.offset for v in saved.deferred] == [11]  # the event waits in the state
    finally:
        held.abandon = True  # SIGKILL: the old process's completion never ends
        held.release.set()

    held.video = ""  # the resumed process's store answers at once
    resumed_ctx = make_context(settings)
    try:
        resumed = IngestLogic(resumed_ctx, saved)
        after: list[Outbound] = []

        def second_ended() -> bool:
            return any(
                isinstance(e, ev.IngestCompleted) and e.video_id != first_video
                for e in events(after)
            )

        assert drive([(resumed, after)], second_ended, 90)
    finally:
        for pool in (resumed_ctx.io, resumed_ctx.completing):
            pool.shutdown(wait=False, cancel_futures=True)
    completed = [e for e in events(after) if isinstance(e, ev.IngestCompleted)]
    assert len(completed) == 2 and completed[0].video_id == first_video
    assert_source_matches(settings, completed[0], original)
    assert_source_matches(settings, completed[1], original + more)
    restarted = [e for e in events(after) if isinstance(e, ev.IngestStarted)]
    assert [e.video_id for e in restarted] == [completed[1].video_id]
