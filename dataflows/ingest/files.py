"""Opening a watched file the way an untrusted event deserves.

A file event names a path; nothing about it is believed. The path must resolve under a watched
root; the resolved path is opened below its root one component at a time, none of them
followed if it is a link (``O_NOFOLLOW``: a link swapped in after the check is refused, not
followed out of the root) and without blocking (``O_NONBLOCK``: a FIFO opens at
once instead of waiting for a writer), and what was opened is checked with ``fstat``: a regular
file, and the same inode the stream started with. Every read opens the file this way again.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from core.roots import root_and_rest

__all__ = ["RefusedFile", "open_regular", "read_exactly"]

OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class RefusedFile(ValueError):
    """The path is not a regular file under the watched roots; the text is short and names no
    path (it may be shown to users)."""


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def _open_beneath(root: Path, rest: Path) -> int:
    """Open ``root/rest`` one component at a time, each without following a link: a directory
    swapped for a link after the path was resolved is refused, not followed out of the root."""
    if not rest.parts:
        raise RefusedFile("the path is a directory, not a regular file")
    directory = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for part in rest.parts[:-1]:
            inner = os.open(part, DIR_FLAGS, dir_fd=directory)
            os.close(directory)
            directory = inner
        return os.open(rest.parts[-1], OPEN_FLAGS, dir_fd=directory)
    finally:
        os.close(directory)


@contextmanager
def open_regular(
    path: str | Path, roots: Iterable[Path], *, inode: int = 0
) -> Iterator[tuple[int, os.stat_result]]:
    """A descriptor of the regular file ``path`` names under ``roots`` and its ``fstat``;
    closed on exit. :class:`RefusedFile` for anything else, ``FileNotFoundError`` if it is gone.
    ``inode``, when known, must be the file's (a replaced file is another file)."""
    where = root_and_rest(path, roots)
    if where is None:
        raise RefusedFile("the path is outside the watched roots")
    try:
        fd = _open_beneath(*where)
    except FileNotFoundError:
        raise
    except OSError as exc:
        if exc.errno in {errno.ELOOP, errno.ENOTDIR}:  # a link appeared after it was resolved
            raise RefusedFile("the path is a symbolic link") from None
        raise RefusedFile(f"the file cannot be opened: {exc.strerror or 'error'}") from None
    try:
        facts = os.fstat(fd)
        if not stat.S_ISREG(facts.st_mode):
            raise RefusedFile(f"the path is {_kind(facts.st_mode)}, not a regular file")
        if inode and facts.st_ino != inode:
            raise RefusedFile("the file was replaced by another one")
        yield fd, facts
    finally:
        os.close(fd)


def read_exactly(fd: int, offset: int, length: int) -> bytes:
    """Up to ``length`` bytes at ``offset`` (fewer only at the end of the file)."""
    pieces: list[bytes] = []
    got = 0
    while got < length:
        piece = os.pread(fd, length - got, offset + got)
        if not piece:
            break
        pieces.append(piece)
        got += len(piece)
    return b"".join(pieces)
