"""When a watched file is finished (issue 11): a close is a hint, not the end.

The real ingest logic is driven in process, with real local files, real MinIO and FFmpeg: events
are handed to it as Bytewax would (``on_item``; ``on_notify`` once ``notify_at`` has passed; a
discarded stream's next event starts a fresh logic), in real time, with the issue's pauses scaled
down (stream timeout 4 s, close grace 0.5 s).
"""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import msgspec
import pytest

from connectors.storage import ensure_bucket, make_client
from core import events as ev
from core.layout import ObjectLayout
from core.settings import MiB, Settings
from dataflows.ingest.logic import IngestContext, IngestLogic
from dataflows.ingest.store import ChunkStore
from dataflows.kafka_io import Inbound, Outbound
from tests.media import h264_clip, remux

pytestmark = pytest.mark.integration

HOST = socket.gethostname()
TIMEOUT = 4.0
GRACE = 0.5
E = TypeVar("E")


def completion_settings(settings: Settings, root: Path, **fields: object) -> Settings:
    """A short stream timeout and close grace; closes are hints (the default)."""
    ingest = msgspec.structs.replace(
        settings.ingest, chunk_size=5 * MiB, stream_timeout=TIMEOUT, close_grace=GRACE,
        close_is_final=True, watch_roots=(str(root),), **fields,
    )  # fmt: skip
    return msgspec.structs.replace(settings, ingest=ingest)


class Stream:
    """One watched file's stream, its events handed to the real logic as Bytewax would."""

    def __init__(self, settings: Settings, path: Path) -> None:
        client = make_client(settings.storage)
        ensure_bucket(client, settings.storage)
        store = ChunkStore(client, settings.storage.bucket, ObjectLayout(settings.storage))
        self.ctx = IngestContext(settings, store)
        self.topic = settings.kafka.topic_file_events
        self.path = path
        self.logic: IngestLogic | None = None
        self.offset = 0
        self.out: list[ev.Event] = []
        self.stamped: list[tuple[float, ev.Event]] = []
        self.wake: datetime | None = None

    def _take(self, result: tuple[list[Outbound], bool]) -> None:
        items, discard = result
        for item in items:
            event = item.event
            self.out.append(event)
            self.stamped.append((time.monotonic(), event))
        if discard:
            self.logic = None
        # as Bytewax does: asked once after each callback, not again until the next one
        self.wake = self.logic.notify_at() if self.logic is not None else None

    def announce(self, *, closed: bool) -> None:
        """The watcher's event for the file as it is now."""
        facts = self.path.stat()
        kind = ev.FileClosed if closed else ev.FileChanged
        event = kind(
            id=uuid.uuid4().hex, stream_id=f"{HOST}:{self.path}", host=HOST, path=str(self.path),
            size=facts.st_size, mtime=facts.st_mtime, inode=facts.st_ino,
        )  # fmt: skip
        if self.logic is None:
            self.logic = IngestLogic(self.ctx, None)
        self.offset += 1
        self._take(self.logic.on_item(Inbound(event, self.topic, 0, self.offset)))

    def append(self, data: bytes) -> None:
        """One open-append-close call (a logger, ``cat >>``, a resumed transfer)."""
        with self.path.open("ab") as handle:
            handle.write(data)
        self.announce(closed=False)
        self.announce(closed=True)

    def run(self, seconds: float) -> None:
        """Let ``seconds`` pass, waking the logic whenever it asked to be; or less, once the
        stream is discarded (completed or failed): nothing wakes it again, as in Bytewax, so
        nothing more can come of it until the next announcement."""
        until = time.monotonic() + seconds
        while time.monotonic() < until and self.logic is not None:
            if self.logic is not None and self.wake is not None and self.wake <= datetime.now(UTC):
                self._take(self.logic.on_notify())
            else:
                time.sleep(0.02)

    def close(self) -> None:
        self.ctx.io.shutdown()

    def of(self, kind: type[E]) -> list[E]:
        return [e for e in self.out if isinstance(e, kind)]


@pytest.fixture
def settings(isolated_settings: Settings, tmp_path: Path) -> Settings:
    return completion_settings(isolated_settings, tmp_path)


@pytest.fixture
def stream(settings: Settings, tmp_path: Path) -> Iterator[Stream]:
    opened = Stream(settings, tmp_path / "watched" / "recording.bin")
    opened.path.parent.mkdir()
    yield opened
    opened.close()


CONTAINERS = {
    "mp4-moov-at-end": (".mp4", ()),
    "mp4-faststart": (".mp4", ("-movflags", "+faststart")),
    "matroska": (".mkv", ()),
}


@pytest.fixture(params=sorted(CONTAINERS))
def clip(request: pytest.FixtureRequest, tmp_path: Path) -> bytes:
    """A 2 s H.264 + AAC clip in each container a recorder might write."""
    suffix, options = CONTAINERS[request.param]
    made = h264_clip(tmp_path / "made.mp4", seconds=2.0)
    return remux(made, tmp_path / f"clip{suffix}", *options)


def pieces(data: bytes, count: int) -> list[bytes]:
    step = -(-len(data) // count)
    return [data[start : start + step] for start in range(0, len(data), step)]


def test_a_file_appended_in_four_separate_writes_is_one_completed_video(
    stream: Stream, clip: bytes
) -> None:
    """Issue 11: four open-append-close calls with pauses (5 s and 12 s there, 1 s and 2.5 s here,
    all below the stream timeout) were three failed videos plus the right one."""
    for piece, pause in zip(pieces(clip, 4), (1.0, 2.5, 1.0, 0.0), strict=True):
        stream.append(piece)
        stream.run(pause)
    stream.run(GRACE + 3.0)  # the last close: complete, so done after the grace

    assert len(stream.of(ev.IngestStarted)) == 1
    assert stream.of(ev.JobFailed) == []
    completed = stream.of(ev.IngestCompleted)
    assert len(completed) == 1
    assert completed[0].manifest.size == len(clip)
    requests = stream.of(ev.TranscodeRequested)
    assert len(requests) == 1
    assert requests[0].probe.duration == pytest.approx(2.0, abs=0.2)


def test_one_write_and_close_completes_after_the_grace_not_the_timeout(
    stream: Stream, clip: bytes
) -> None:
    """The fast path: a recorder that writes once and closes is done about a grace later."""
    stream.path.write_bytes(clip)
    closed_at = time.monotonic()
    stream.announce(closed=True)
    stream.run(TIMEOUT - 1.0)

    requests = [(at, e) for at, e in stream.stamped if isinstance(e, ev.TranscodeRequested)]
    assert len(requests) == 1
    assert GRACE <= requests[0][0] - closed_at < TIMEOUT - 1.5
    assert stream.of(ev.JobFailed) == []


def test_an_mp4_truncated_then_continued_in_a_second_open_is_one_video(
    stream: Stream, tmp_path: Path
) -> None:
    """The moov at the end: the first open's bytes are no video yet; the second open ends it."""
    data = remux(h264_clip(tmp_path / "made.mp4", seconds=2.0), tmp_path / "resumed.mp4")
    first, rest = data[: len(data) // 2], data[len(data) // 2 :]
    stream.append(first)  # a transfer cut off half way, closed
    stream.run(2.0)  # longer than the grace, shorter than the timeout
    stream.append(rest)  # resumed in a new open
    stream.run(GRACE + 3.0)

    assert len(stream.of(ev.IngestStarted)) == 1
    assert stream.of(ev.JobFailed) == []
    completed = stream.of(ev.IngestCompleted)
    assert len(completed) == 1 and completed[0].manifest.size == len(data)
    assert len(stream.of(ev.TranscodeRequested)) == 1


def test_a_closed_file_that_never_becomes_a_video_fails_at_the_timeout(
    stream: Stream, tmp_path: Path
) -> None:
    """A close of an incomplete file does not end it, and nothing waits forever: at the stream
    timeout it is taken as it is, and fails with its reason."""
    data = h264_clip(tmp_path / "made.mp4", seconds=2.0).read_bytes()
    stream.append(data[: len(data) // 2])
    stream.run(GRACE + 1.0)
    assert stream.out and stream.of(ev.JobFailed) == []  # still waiting for more
    stream.run(TIMEOUT + 2.0)

    failed = stream.of(ev.JobFailed)
    assert len(failed) == 1 and failed[0].stage == "probe"
    assert stream.of(ev.TranscodeRequested) == []


def test_a_write_within_the_grace_keeps_the_stream_open(stream: Stream, tmp_path: Path) -> None:
    """Complete at a close, then appended to before the grace ran out: one video of it all
    (closed again, and complete again, it ends after the grace)."""
    data = h264_clip(tmp_path / "made.mkv", seconds=2.0).read_bytes()
    more = h264_clip(tmp_path / "more.mkv", seconds=1.0).read_bytes()
    stream.path.write_bytes(data)
    stream.announce(closed=True)
    stream.run(GRACE / 5)
    with stream.path.open("ab") as handle:  # appended before the grace is over: not the end
        handle.write(more)
    stream.announce(closed=False)
    stream.run(GRACE + 0.5)
    assert stream.of(ev.IngestCompleted) == []  # a write came: the close was no end
    stream.announce(closed=True)
    stream.run(TIMEOUT + 1.0)

    completed = stream.of(ev.IngestCompleted)
    assert len(stream.of(ev.IngestStarted)) == 1 and len(completed) == 1
    assert completed[0].manifest.size == len(data) + len(more)
