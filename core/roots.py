"""Watched roots: whether a path, with every link resolved, lies under one of them.

Shared by the watcher (which reports only files under its roots) and the ingest flow (which
honours a file event only for a file under them): both resolve links before deciding, so a link
inside a root that leads outside it is outside.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

__all__ = ["resolve_roots", "resolve_under", "root_and_rest"]


def resolve_roots(roots: Iterable[str | Path]) -> tuple[Path, ...]:
    """Each root with its links resolved (a root that is itself a link means its target)."""
    return tuple(Path(os.path.realpath(root)) for root in roots)


def resolve_under(path: str | Path, roots: Iterable[Path]) -> Path | None:
    """``path`` resolved (links, ``..``), if it lies under one of the resolved ``roots``; else
    None. A relative path is refused: events name absolute paths, a relative one means whatever
    directory the reader happens to run in."""
    if not Path(path).is_absolute():
        return None
    real = Path(os.path.realpath(path))
    return real if any(real.is_relative_to(root) for root in roots) else None


def root_and_rest(path: str | Path, roots: Iterable[Path]) -> tuple[Path, Path] | None:
    """The resolved root ``path`` lies under and the rest of its resolved path below that root
    (empty for the root itself), or None when it lies under none of them."""
    real = resolve_under(path, roots)
    if real is None:
        return None
    root = max((r for r in roots if real.is_relative_to(r)), key=lambda r: len(r.parts))
    return root, real.relative_to(root)
