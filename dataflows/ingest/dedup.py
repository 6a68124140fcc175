"""Whole-file deduplication: a file whose SHA-256 an existing source has stores no new bytes.

Chunk-level dedup of compressed video saves next to nothing (README, "Deduplication"): two
encodes of one scene share no 10 MiB chunk. What does recur is the same file sent twice (a
re-upload, a copy dropped in two watched folders), so the unit of dedup is the whole file.

The index (``dataflows/source_index.py``) is a hint, never the record: the record is the
manifests. A delete removes an entry *before* it decides whether the bytes are still used. A new
video therefore adopts existing
bytes only through :func:`adopt`: write its manifest naming them, then look again that the entry
and the bytes are still there; if a delete took them in between, the video keeps its own bytes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, TypeVar

from core.events import ChunkRef, Manifest
from core.logs import get_logger
from dataflows.ingest import metrics
from dataflows.ingest.store import ChunkStore
from dataflows.source_index import SourceIndex

__all__ = ["SourceIndex", "adopt", "existing_source_for", "record_source"]

log = get_logger("vidflow.ingest")
T = TypeVar("T")


def count_saved(size: int) -> None:
    """One whole file deduplicated: ``size`` bytes not stored."""
    metrics.DEDUP_FILES.inc()
    metrics.DEDUP_BYTES_SAVED.inc(size)
    log.info("identical source found: no new bytes stored", size=size)


def adopt(
    index: SourceIndex, sha256: str, own_key: str, size: int, write: Callable[[str], Manifest]
) -> tuple[Manifest, bool]:
    """The manifest of a new source whose own bytes are at ``own_key``, written by ``write``
    (given the key to name), and whether it names an existing source's bytes instead (the
    caller then drops its own). Naming is confirmed after the manifest is written (see the
    module docstring); when a delete took the bytes meanwhile the manifest names ``own_key``."""
    existing = index.existing_source_for(sha256, size)
    if existing is not None and existing != own_key:
        manifest = write(existing)
        if index.still_holds(sha256, existing, size):
            count_saved(size)
            return manifest, True
        log.info("identical source deleted meanwhile: keeping the new bytes", key=own_key)
    manifest = write(own_key)
    index.remember(sha256, own_key)
    return manifest, False


def existing_source_for(index: SourceIndex, sha256: str, size: int | None = None) -> str | None:
    """The key of stored bytes identical to a file of ``sha256`` (a watched file's completion
    asks before completing its multipart source, and aborts it when there is one)."""
    return index.existing_source_for(sha256, size)


class Retry(Protocol):
    """The storage retry policy (:meth:`IngestContext.with_storage_retry`)."""

    def __call__(self, what: str, call: Callable[[], T]) -> T: ...


def record_source(
    store: ChunkStore,
    retry: Retry,
    video_id: str,
    own_key: str,
    chunks: list[ChunkRef],
    sha256: str,
) -> Manifest:
    """Write the manifest of a source whose bytes are at ``own_key``: naming identical bytes
    already stored when there are some (``own_key`` is then removed), else ``own_key``. The
    key to read the bytes from is ``store.layout.source_of(manifest, video_id)``."""
    index = store.source_index()
    size = sum(c.size for c in chunks)

    def write(key: str) -> Manifest:
        return store.write_manifest(video_id, key, chunks, sha256)

    manifest, shared = retry("dedup", lambda: adopt(index, sha256, own_key, size, write))
    if shared:  # its bytes are someone else's already: its own are not needed
        retry("drop", lambda: store.remove(own_key))
    return manifest
