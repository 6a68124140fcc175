"""Pure rules of the directory watcher: what to ignore, what is inside a root, what changed."""

from __future__ import annotations

import fnmatch
import socket
import stat
from dataclasses import dataclass
from pathlib import Path

from core.roots import resolve_roots, resolve_under

__all__ = [
    "FileFacts",
    "inside_roots",
    "is_ignored",
    "reportable",
    "stream_id_for",
    "watcher_host",
]


@dataclass(frozen=True)
class FileFacts:
    """What a file looked like when it was last reported."""

    size: int
    mtime: float
    inode: int

    @classmethod
    def of(cls, path: Path) -> FileFacts:
        """Facts of ``path`` now (follows symlinks)."""
        stat = path.stat()
        return cls(size=stat.st_size, mtime=stat.st_mtime, inode=stat.st_ino)


def is_ignored(path: Path, root: Path, patterns: tuple[str, ...]) -> bool:
    """Whether any component of ``path`` below ``root`` matches an ignore pattern."""
    try:
        parts = path.relative_to(root).parts
    except ValueError:
        parts = (path.name,)
    return any(fnmatch.fnmatch(part, pattern) for part in parts for pattern in patterns)


def inside_roots(path: Path, roots: list[Path]) -> bool:
    """Whether ``path``, with symlinks resolved, lies under one of the (resolved) ``roots``."""
    return resolve_under(path, resolve_roots(roots)) is not None


def reportable(path: Path, roots: list[Path], patterns: tuple[str, ...]) -> bool:
    """Whether the watcher may report ``path``: named under a root, not ignored, still under a
    root with every link resolved (a linked file or directory leading out is not), and a regular
    file (not a FIFO, device, socket or directory). The ingest flow checks all this again."""
    root = next((r for r in roots if path.is_relative_to(r)), None)
    if root is None or is_ignored(path, root, patterns) or not inside_roots(path, roots):
        return False
    try:
        return stat.S_ISREG(path.stat().st_mode)
    except OSError:
        return False


def watcher_host(configured: str) -> str:
    """The host part of stream ids: the setting, else this machine's name."""
    return configured or socket.gethostname()


def stream_id_for(host: str, path: Path) -> str:
    """A stream is one path on one host."""
    return f"{host}:{path}"
