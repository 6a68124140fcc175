"""Whether a closed file is a whole video (issue 11), on real files made by FFmpeg."""

from __future__ import annotations

import os
import struct
from concurrent.futures import Future
from pathlib import Path

import pytest

from core import events as ev
from core.settings import SettingsError, load_settings
from dataflows.ingest.closing import CloseGrace, Ending, container_ending, ends_as_a_video
from tests.media import h264_clip, remux


def reader(data: bytes):  # type: ignore[no-untyped-def]
    return lambda offset, length: data[offset : offset + length]


def made(tmp_path: Path, name: str, *options: str) -> bytes:
    """A 1 s H.264 + AAC clip remuxed into ``name``'s container with ``options``."""
    source = h264_clip(tmp_path / "source.mp4", seconds=1.0)
    return remux(source, tmp_path / name, *options)


CONTAINERS = {
    "mp4-moov-at-end": ("clip.mp4", ()),
    "mp4-faststart": ("clip.mp4", ("-movflags", "+faststart")),
    "mp4-fragmented": ("clip.mp4", ("-movflags", "+frag_keyframe+empty_moov")),
    "mov": ("clip.mov", ()),
    "matroska": ("clip.mkv", ()),
}


@pytest.mark.parametrize("container", sorted(CONTAINERS))
def test_a_whole_file_has_its_end_and_no_prefix_has(container: str, tmp_path: Path) -> None:
    name, options = CONTAINERS[container]
    data = made(tmp_path, name, *options)
    assert container_ending(reader(data), len(data)) is Ending.PRESENT
    cuts = {8, 100, len(data) - 1} | {len(data) * k // 17 for k in range(1, 17)}
    for cut in sorted(cuts):
        prefix = data[:cut]
        assert container_ending(reader(prefix), cut) is Ending.MISSING, cut


def test_an_mp4_whose_mdat_runs_to_the_end_is_still_being_written() -> None:
    """A size of 0 means "to the end of the file": the recorder has not closed the box."""
    ftyp = struct.pack(">I4s4sI", 16, b"ftyp", b"isom", 0)
    moov = struct.pack(">I4s", 8, b"moov")
    open_mdat = struct.pack(">I4s", 0, b"mdat") + b"\0" * 64
    data = ftyp + moov + open_mdat
    assert container_ending(reader(data), len(data)) is Ending.MISSING


def test_an_mp4_box_with_a_64_bit_size_is_walked() -> None:
    ftyp = struct.pack(">I4s4sI", 16, b"ftyp", b"isom", 0)
    mdat = struct.pack(">I4sQ", 1, b"mdat", 16 + 40) + b"\0" * 40
    moov = struct.pack(">I4s", 8, b"moov")
    data = ftyp + mdat + moov
    assert container_ending(reader(data), len(data)) is Ending.PRESENT
    assert container_ending(reader(data[:-1]), len(data) - 1) is Ending.MISSING


def test_matroska_of_unknown_size_and_other_containers_are_left_to_a_probe(
    tmp_path: Path,
) -> None:
    mkv = bytearray(made(tmp_path, "live.mkv"))
    segment = mkv.index(b"\x18\x53\x80\x67")
    assert mkv[segment + 4] == 0x01  # FFmpeg writes the Segment size in 8 bytes
    mkv[segment + 4 : segment + 12] = b"\x01" + b"\xff" * 7  # "unknown", as live recorders do
    assert container_ending(reader(bytes(mkv)), len(mkv)) is Ending.UNKNOWN
    ts = made(tmp_path, "clip.ts")
    assert container_ending(reader(ts), len(ts)) is Ending.UNKNOWN
    assert container_ending(reader(b""), 0) is Ending.MISSING


def test_a_closed_file_is_a_video_by_its_container_or_by_a_probe(tmp_path: Path) -> None:
    root = tmp_path / "watched"
    root.mkdir()
    for name, data, whole in [
        ("a.mp4", made(tmp_path, "a.mp4"), True),
        ("b.ts", made(tmp_path, "b.ts"), True),  # no end marker: the probe decides
        ("c.mp4", made(tmp_path, "c.mp4")[:-100], False),
        ("d.bin", os.urandom(4096), False),
    ]:
        path = root / name
        path.write_bytes(data)
        facts = path.stat()
        found = ends_as_a_video(str(path), [root], inode=facts.st_ino, size=len(data))
        assert found is whole, name
    # written to since the close reported its size: more is coming
    path = root / "a.mp4"
    facts = path.stat()
    assert not ends_as_a_video(str(path), [root], inode=facts.st_ino, size=facts.st_size - 1)
    # anything refused (outside the roots, another inode, gone) is not a finished video
    (tmp_path / "outside.mp4").write_bytes(path.read_bytes())
    assert not ends_as_a_video(str(tmp_path / "outside.mp4"), [root], inode=0, size=facts.st_size)
    assert not ends_as_a_video(str(root / "gone.mp4"), [root], inode=0, size=facts.st_size)
    assert not ends_as_a_video(str(path), [root], inode=facts.st_ino + 1, size=facts.st_size)


def file_event(kind: type[ev.FileChanged | ev.FileClosed], size: int) -> ev.FileChanged:
    return kind(id="x", stream_id="h:/w/a.mp4", host="h", path="/w/a.mp4", size=size, mtime=1.0)  # type: ignore[return-value]


class Checks:
    """The file checks a grace starts, answered by the test."""

    def __init__(self) -> None:
        self.started: list[tuple[int, Future[bool]]] = []

    def __call__(self, size: int) -> Future[bool]:
        self.started.append((size, Future()))
        return self.started[-1][1]

    def answer(self, complete: bool) -> None:
        self.started[-1][1].set_result(complete)


def test_a_close_is_checked_after_its_grace_unless_a_write_overtakes_it() -> None:
    grace, checks = CloseGrace(2.0), Checks()
    assert grace.wake_at(0.0) is None
    grace.heard(file_event(ev.FileClosed, 100), now=10.0)
    assert grace.wake_at(10.0) == 12.0
    grace.heard(file_event(ev.FileChanged, 100), now=10.5)  # the same write reported again
    assert grace.settle(11.9, checks) is None and checks.started == []
    assert grace.settle(12.0, checks) is None  # the grace ran out: the file is checked
    assert [size for size, _ in checks.started] == [100]
    assert grace.wake_at(12.0) == pytest.approx(12.05)  # soon again while the check runs
    assert grace.settle(12.1, checks) is None  # not answered yet
    checks.answer(True)
    assert grace.settle(12.2, checks) == 100
    assert grace.settle(13.0, checks) is None and grace.wake_at(13.0) is None  # taken once

    grace.heard(file_event(ev.FileClosed, 100), now=20.0)
    grace.heard(file_event(ev.FileChanged, 150), now=21.0)  # appended: the close was no end
    assert grace.wake_at(21.0) is None and grace.settle(30.0, checks) is None

    grace.heard(file_event(ev.FileClosed, 150), now=40.0)
    grace.heard(file_event(ev.FileClosed, 200), now=41.0)  # a later close starts it over
    assert grace.settle(42.5, checks) is None and len(checks.started) == 1
    grace.settle(43.0, checks)
    assert checks.started[-1][0] == 200
    checks.answer(False)  # not a whole video: the stream waits for its timeout
    assert grace.settle(43.1, checks) is None and grace.wake_at(43.1) is None

    grace.heard(file_event(ev.FileClosed, 300), now=50.0)
    grace.settle(52.0, checks)
    grace.heard(file_event(ev.FileChanged, 400), now=52.01)  # written during the check
    checks.answer(True)
    assert grace.settle(52.1, checks) is None  # the answer is about a size already gone


def test_close_grace_is_a_setting_and_cannot_be_negative() -> None:
    assert load_settings({}).ingest.close_grace == 2.0
    assert load_settings({"VIDFLOW_INGEST_CLOSE_GRACE": "0.5"}).ingest.close_grace == 0.5
    with pytest.raises(SettingsError, match="CLOSE_GRACE"):
        load_settings({"VIDFLOW_INGEST_CLOSE_GRACE": "-1"})
