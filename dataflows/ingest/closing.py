"""When a watched file is finished: a close is a hint, not the end.

A writer closing a file (``file.closed``, from inotify ``IN_CLOSE_WRITE``) does not mean it is
done with it: a logger, ``cat >>`` or a resumed transfer opens, appends and closes again and
again. Taking every close as the end made each piece a video of its own (issue 11). So a close
ends a stream only when both hold:

* the file is a complete video now: its container's end is present. For ISO BMFF (MP4, MOV)
  the top-level boxes tile the file exactly and ``moov`` and ``mdat`` are among them (a
  truncated ``mdat`` reaches past the end; a moov-at-the-end file has no ``moov`` yet); for
  Matroska/WebM the EBML header and a Segment of known size tile it exactly. Both are a few
  ``pread`` calls. Any other container (or a Matroska Segment of unknown size, as a live
  recorder writes it) is probed on the local file: complete if FFmpeg finds a video with a
  duration;
* no other write arrives within the close grace (``close_grace``, a couple of seconds) and the
  file still has the size the close reported.

Otherwise the close changes nothing: the stream waits for the inactivity timeout, as for a file
still open, and at that timeout it ends whatever it holds (a file that never became a video then
fails with the probe's reason). A file completed by a close and appended to later is a new
version, as before: the grace is there so that the common case, an append right after a close,
does not get that far. Nothing here is persisted: a resumed flow has no pending close, and the
timeout takes over.
"""

from __future__ import annotations

import json
import struct
import subprocess
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from connectors.ffmpeg import ProbeError, ffprobe_binary, parse_probe
from core import events as ev
from core.logs import get_logger
from dataflows.ingest.files import RefusedFile, open_regular, read_exactly

__all__ = ["CloseGrace", "Ending", "container_ending", "ends_as_a_video"]

log = get_logger("vidflow.ingest")
Reader = Callable[[int, int], bytes]  # (offset, length) -> at most length bytes
PROBE_SECONDS = 15.0
MAX_TOP_LEVEL = 1_000_000  # boxes walked before giving up (a fragment is two: moof, mdat)
ISO_FIRST_BOXES = frozenset({b"ftyp", b"styp", b"moov", b"mdat", b"free", b"skip", b"wide"})
EBML_MAGIC = b"\x1a\x45\xdf\xa3"
MATROSKA_SEGMENT = 0x18538067


class Ending(Enum):
    """What a container's bytes say about its end."""

    PRESENT = "present"  # the container is whole
    MISSING = "missing"  # more bytes are due (or the file is broken: the timeout settles it)
    UNKNOWN = "unknown"  # the bytes cannot tell: a probe decides


def _iso_bmff(read: Reader, size: int) -> Ending:
    """Top-level boxes must tile the file exactly, ``moov`` and ``mdat`` among them."""
    seen: set[bytes] = set()
    offset = 0
    for _ in range(MAX_TOP_LEVEL):
        if offset == size:
            return Ending.PRESENT if {b"moov", b"mdat"} <= seen else Ending.MISSING
        header = read(offset, 16)
        if len(header) < 8:
            return Ending.MISSING
        length, kind = struct.unpack(">I4s", header[:8])
        header_length = 8
        if length == 1:  # a 64-bit size follows the type
            if len(header) < 16:
                return Ending.MISSING
            (length,) = struct.unpack(">Q", header[8:16])
            header_length = 16
        if length == 0:  # "to the end of the file": a recorder has not written its size yet
            return Ending.MISSING
        if length < header_length or offset + length > size:
            return Ending.MISSING
        seen.add(kind)
        offset += length
    return Ending.UNKNOWN


def _ebml_id(data: bytes, at: int) -> tuple[int, int] | None:
    """An EBML element id (its marker bit kept) at ``at``, and where it ends."""
    if at >= len(data) or data[at] == 0:
        return None
    width = 8 - data[at].bit_length() + 1
    if width > 4 or at + width > len(data):
        return None
    return int.from_bytes(data[at : at + width], "big"), at + width


def _ebml_size(data: bytes, at: int) -> tuple[int | None, int] | None:
    """An EBML data size at ``at`` (None when "unknown"), and where it ends."""
    if at >= len(data) or data[at] == 0:
        return None
    width = 8 - data[at].bit_length() + 1
    if at + width > len(data):
        return None
    value = int.from_bytes(data[at : at + width], "big") & ((1 << (7 * width)) - 1)
    return (None if value == (1 << (7 * width)) - 1 else value), at + width


def _matroska(read: Reader, size: int) -> Ending:
    """Top-level elements (EBML header, Segment) must tile the file exactly; a Segment of
    unknown size (a live recording) cannot tell, so a probe decides."""
    offset = 0
    segment = False
    for _ in range(MAX_TOP_LEVEL):
        if offset == size:
            return Ending.PRESENT if segment else Ending.MISSING
        head = read(offset, 12)
        element = _ebml_id(head, 0)
        if element is None:
            return Ending.MISSING
        sized = _ebml_size(head, element[1])
        if sized is None:
            return Ending.MISSING
        length, data_start = sized
        if length is None:
            return Ending.UNKNOWN
        segment = segment or element[0] == MATROSKA_SEGMENT
        end = offset + data_start + length
        if end > size:
            return Ending.MISSING
        offset = end
    return Ending.UNKNOWN


def container_ending(read: Reader, size: int) -> Ending:
    """Whether the ``size`` bytes ``read`` gives hold a whole container (cheap: a few reads)."""
    if size <= 0:
        return Ending.MISSING
    head = read(0, 8)
    if head.startswith(EBML_MAGIC):
        return _matroska(read, size)
    if len(head) == 8 and head[4:8] in ISO_FIRST_BOXES:
        return _iso_bmff(read, size)
    return Ending.UNKNOWN


def _probe_descriptor(fd: int) -> bool:
    """FFmpeg finds a video with a duration in the open file ``fd`` (handed to ffprobe as
    ``/dev/fd/N``: the very file that was checked, never a path that may have been swapped)."""
    command = [
        ffprobe_binary(), "-v", "error", "-print_format", "json", "-show_format",
        "-show_streams", f"/dev/fd/{fd}",
    ]  # fmt: skip
    try:
        done = subprocess.run(
            command, capture_output=True, timeout=PROBE_SECONDS, check=False, pass_fds=(fd,)
        )
        if done.returncode != 0:
            return False
        return parse_probe(json.loads(done.stdout or b"{}")).duration > 0
    except (subprocess.TimeoutExpired, ProbeError, json.JSONDecodeError, OSError):
        return False


def ends_as_a_video(path: str, roots: Iterable[Path], *, inode: int, size: int) -> bool:
    """The file (opened as untrusted input) still has ``size`` bytes and is a complete video.

    Any trouble (gone, refused, unreadable) is "not complete": the stream then waits for its
    timeout, whose check of the file gives the reason users see."""
    try:
        with open_regular(path, roots, inode=inode) as (fd, facts):
            if facts.st_size != size:  # written to since the close: more is coming
                return False
            ending = container_ending(lambda at, n: read_exactly(fd, at, n), size)
            if ending is Ending.UNKNOWN:
                return _probe_descriptor(fd)
            return ending is Ending.PRESENT
    except (RefusedFile, OSError) as exc:
        log.info("a closed file could not be checked", path=Path(path).name, error=str(exc))
        return False


@dataclass(frozen=True)
class _Pending:
    size: int
    due: float


CHECK_POLL_SECONDS = 0.05


class CloseGrace:
    """A stream's latest close: its grace, then the check of the file (run off the worker
    thread: a probe or a slow disk must not hold up other streams), unless a write overtakes it.
    """

    def __init__(self, grace: float) -> None:
        self.grace = grace
        self.pending: _Pending | None = None
        self.check: tuple[int, Future[bool]] | None = None

    def heard(self, event: ev.FileChanged | ev.FileClosed, now: float) -> None:
        """A close (re)starts the grace; a write of another size ends it, and makes a check
        under way stale (the same size again is the same write, reported twice)."""
        if self.check is not None and event.size != self.check[0]:
            self.check = None
        if isinstance(event, ev.FileClosed):
            self.pending = _Pending(event.size, now + self.grace)
        elif self.pending is not None and event.size != self.pending.size:
            self.pending = None

    def wake_at(self, now: float) -> float | None:
        """When to look again: the grace's end, or soon while a check is running."""
        if self.check is not None:
            return now + CHECK_POLL_SECONDS
        return self.pending.due if self.pending is not None else None

    def settle(self, now: float, check: Callable[[int], Future[bool]]) -> int | None:
        """The size at which the file proved a complete video, once; else None. A grace that
        ran out starts ``check(size)``; its result is taken on a later call."""
        if self.check is None:
            if self.pending is None or now < self.pending.due:
                return None
            size, self.pending = self.pending.size, None
            self.check = (size, check(size))
            return None
        size, running = self.check
        if not running.done():
            return None
        self.check = None
        try:
            complete = running.result()
        except Exception:  # an unexpected failure is "not known complete": the timeout decides
            log.exception("checking a closed file failed")
            complete = False
        return size if complete else None

    def forget(self) -> None:
        """The stream ended or restarted: no close is pending any more."""
        self.pending, self.check = None, None
