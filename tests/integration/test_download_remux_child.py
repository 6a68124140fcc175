"""The download's FFmpeg child never outlives its reader: stopped when the reader stops early
(a client gone), when the reader is dropped unread, and at its deadline; its slot comes back
each time. Real FFmpeg reading real MinIO objects through presigned URLs."""

from __future__ import annotations

import asyncio
import gc
import signal
import time
from datetime import timedelta
from pathlib import Path

import pytest

from connectors.ffmpeg import ffmpeg_binary
from connectors.storage import close_client, make_client
from core.layout import ObjectLayout
from core.settings import Settings
from portal.files.remux import RemuxChild, RemuxFailed, RemuxSlots, remux_command
from tests.integration.test_portal_download import lay_out

pytestmark = pytest.mark.integration


def _argv(settings: Settings, video_id: str) -> list[str]:
    layout, store = ObjectLayout(settings.storage), make_client(settings.storage)
    try:
        urls = [
            store.presigned_get_object(settings.storage.bucket, key, expires=timedelta(minutes=5))
            for key in (layout.rendition(video_id, 240), layout.audio(video_id))
        ]
    finally:
        close_client(store)
    return remux_command(ffmpeg_binary(), *urls)


def _gone(pid: int) -> bool:
    """Whether no process ``pid`` exists any more (reaped, not a zombie)."""
    return not Path(f"/proc/{pid}").exists()


@pytest.fixture
def argv(portal_settings: Settings, tmp_path: Path) -> list[str]:
    """The remux of a real 6 s rung: more output than a pipe holds, so FFmpeg is still
    running, blocked on its pipe, while nobody reads."""
    return _argv(portal_settings, lay_out(portal_settings, tmp_path, "dan").video_id)


def test_a_reader_that_stops_early_kills_the_child(argv: list[str]) -> None:
    slots = RemuxSlots(1)
    release = slots.take()
    assert release is not None
    child = RemuxChild(argv, deadline=60, on_end=release)

    async def client_gone_after_one_piece() -> int:
        body = child.stream()
        first = await anext(body)  # type: ignore[arg-type]
        await asyncio.sleep(0.5)  # FFmpeg fills the pipe and waits
        assert child._proc.poll() is None  # still running: the early stop is what ends it
        await body.aclose()  # type: ignore[attr-defined]  # what the server does on a disconnect
        return len(first)

    assert asyncio.run(client_gone_after_one_piece()) > 0
    assert child._proc.returncode == -signal.SIGKILL and _gone(child.pid)
    assert slots.used == 0 and slots.take() is not None


def test_a_reader_dropped_before_the_first_piece_kills_the_child(argv: list[str]) -> None:
    slots = RemuxSlots(1)
    release = slots.take()
    assert release is not None
    child = RemuxChild(argv, deadline=60, on_end=release)
    pid, body = child.pid, child.stream()
    time.sleep(0.5)
    assert not _gone(pid)
    del body  # the response never iterated it (the client left before the first byte)
    gc.collect()
    assert child._proc.returncode == -signal.SIGKILL and _gone(pid)
    assert slots.used == 0


def test_a_remux_past_its_deadline_is_stopped_and_fails(argv: list[str]) -> None:
    slots = RemuxSlots(1)
    release = slots.take()
    assert release is not None
    child = RemuxChild(argv, deadline=1.0, on_end=release)

    async def slow_reader() -> None:
        async for _ in child.stream():
            await asyncio.sleep(0.4)  # a client slower than the deadline allows

    with pytest.raises(RemuxFailed, match="took too long"):
        asyncio.run(slow_reader())
    assert child._proc.returncode == -signal.SIGKILL and _gone(child.pid)
    assert slots.used == 0


def test_a_whole_read_ends_the_child_normally(argv: list[str]) -> None:
    slots = RemuxSlots(1)
    release = slots.take()
    assert release is not None
    child = RemuxChild(argv, deadline=60, on_end=release)

    async def read_all() -> bytes:
        return b"".join([chunk async for chunk in child.stream()])

    data = asyncio.run(read_all())
    assert data[4:8] == b"ftyp" and b"moof" in data
    assert child._proc.returncode == 0 and _gone(child.pid) and slots.used == 0
