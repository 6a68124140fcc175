"""The download's FFmpeg child never outlives its reader: stopped when the reader stops early
(a client gone, also through the portal as deployed), when the reader is dropped unread, and at
its deadline; its slot comes back each time. Real FFmpeg reading real MinIO objects through
presigned URLs."""

from __future__ import annotations

import asyncio
import gc
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from connectors.ffmpeg import ffmpeg_binary
from connectors.storage import close_client, make_client
from core.layout import ObjectLayout
from core.settings import Settings, settings_environ
from portal.files.remux import RemuxChild, RemuxFailed, RemuxSlots, remux_command
from tests.flows import ROOT, free_port, wait_http
from tests.integration.test_portal_download import lay_out
from tests.portal_login import log_in

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
def argv(portal_settings: Settings) -> list[str]:
    """The remux of a real 6 s rung: more output than a pipe holds, so FFmpeg is still
    running, blocked on its pipe, while nobody reads."""
    return _argv(portal_settings, lay_out(portal_settings, "dan").video_id)


def _holding_a_slot(argv: list[str], deadline: float) -> tuple[RemuxChild, RemuxSlots]:
    """A remux child started in the one slot of its bound, which its end gives back."""
    slots = RemuxSlots(1)
    release = slots.take()
    assert release is not None
    return RemuxChild(argv, deadline=deadline, on_end=release), slots


def test_a_reader_that_stops_early_kills_the_child(argv: list[str]) -> None:
    child, slots = _holding_a_slot(argv, deadline=60)

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
    child, slots = _holding_a_slot(argv, deadline=60)
    pid, body = child.pid, child.stream()
    time.sleep(0.5)
    assert not _gone(pid)
    del body  # the response never iterated it (the client left before the first byte)
    gc.collect()
    assert child._proc.returncode == -signal.SIGKILL and _gone(pid)
    assert slots.used == 0


def test_a_remux_past_its_deadline_is_stopped_and_fails(argv: list[str]) -> None:
    child, slots = _holding_a_slot(argv, deadline=1.0)

    async def slow_reader() -> None:
        async for _ in child.stream():
            await asyncio.sleep(0.4)  # a client slower than the deadline allows

    with pytest.raises(RemuxFailed, match="took too long"):
        asyncio.run(slow_reader())
    assert child._proc.returncode == -signal.SIGKILL and _gone(child.pid)
    assert slots.used == 0


def test_a_whole_read_ends_the_child_normally(argv: list[str]) -> None:
    child, slots = _holding_a_slot(argv, deadline=60)

    async def read_all() -> bytes:
        return b"".join([chunk async for chunk in child.stream()])

    data = asyncio.run(read_all())
    assert data[4:8] == b"ftyp" and b"moof" in data
    assert child._proc.returncode == 0 and _gone(child.pid) and slots.used == 0


@contextmanager
def served(settings: Settings) -> Iterator[tuple[str, int]]:
    """``vidflow portal serve`` as deployed (uvicorn in its own process): base URL and pid."""
    port = free_port()
    environ = {**settings_environ(settings), "PATH": "/usr/bin:/bin", "HOME": str(Path.home())}
    server = subprocess.Popen(
        [sys.executable, "-m", "vidflow", "portal", "serve", "--port", str(port)],
        cwd=ROOT, env=environ, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"
        wait_http(f"{base}/healthz")
        yield base, server.pid
    finally:
        server.terminate()
        server.wait(10)


def _ffmpeg_children(pid: int) -> list[int]:
    """FFmpeg processes whose parent is ``pid`` (zombies included: they were not reaped)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue  # ended meanwhile
        name, rest = text[text.index("(") + 1 : text.rindex(")")], text[text.rindex(")") + 2 :]
        if name == "ffmpeg" and int(rest.split()[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def test_a_client_that_goes_away_mid_download_leaves_no_ffmpeg_behind(
    portal_settings: Settings, tmp_path: Path
) -> None:
    ladder = lay_out(portal_settings, "dan")
    # a rung far larger than every buffer between FFmpeg and the client (pipe, sockets)
    big = tmp_path / "big.mp4"
    subprocess.run(
        [ffmpeg_binary(), "-v", "error", "-y", "-f", "lavfi",
         "-i", "nullsrc=s=426x240:r=25,geq=random(1)*255:128:128", "-t", "6",
         "-c:v", "libx264", "-preset", "ultrafast", "-qp", "0", "-g", "50",
         "-movflags", "frag_keyframe+empty_moov", "-f", "mp4", str(big)],
        check=True,
    )  # fmt: skip
    key = ObjectLayout(portal_settings.storage).rendition(ladder.video_id, 240)
    store = make_client(portal_settings.storage)
    store.fput_object(portal_settings.storage.bucket, key, str(big))
    close_client(store)
    url = f"/videos/{ladder.video_id}/download/240"
    with served(portal_settings) as (base, pid), httpx.Client(base_url=base, timeout=30) as client:
        log_in(client, portal_settings, "dan", "uploader")  # type: ignore[arg-type]
        cookies = "; ".join(f"{name}={value}" for name, value in client.cookies.items())
        # a client with a small receive window, so the kernel does not take the whole file
        with socket.socket() as slow:
            slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            slow.connect(("127.0.0.1", int(base.rsplit(":", 1)[1])))
            slow.sendall(f"GET {url} HTTP/1.1\r\nHost: x\r\nCookie: {cookies}\r\n\r\n".encode())
            head = slow.recv(4096)
            assert head.startswith(b"HTTP/1.1 200") and b"video/mp4" in head
            time.sleep(0.5)
            running = _ffmpeg_children(pid)
            assert len(running) == 1  # its remux, blocked on the client that stopped reading
        # the client closed the connection after a few bytes of many megabytes
        deadline = time.monotonic() + 15
        while _ffmpeg_children(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _ffmpeg_children(pid) == [] and _gone(running[0])
        # and its slot came back: the next download is whole
        whole = client.get(url)
        assert whole.status_code == 200 and len(whole.content) > big.stat().st_size // 2
