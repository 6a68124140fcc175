"""The blocking end of a stream, run off the Bytewax worker thread.

Completing the source's multipart upload, writing the manifest and probing it take from a second
to a minute; on the worker thread they would stall every other stream of the worker and its
snapshots, so :class:`IngestLogic` submits :func:`finish` to a thread pool and polls the future
from its timer, as the transcode steps poll their children.

:func:`finish` touches no step state: it gets copies of the facts it needs and returns what
happened; the logic turns that into status events on the worker thread. Its errors are raised
(through the future) exactly as they were when these steps ran inline, so the logic handles them
in one place. A stream killed mid-way finishes again on resume from its snapshot, which still
holds the facts. Nothing is read back on the normal path: every part was checked by the store
on arrival against its chunk's SHA-256 and the store's composite checksum must be the chunks'
one; the whole-file SHA-256 was computed as the bytes were read. Only a stream resumed from a
snapshot (its running SHA-256 is not state) or whose upload was completed before a crash reads
the source back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from connectors.ffmpeg import ProbeError, probe
from core import events as ev
from dataflows.ingest.dedup import record_source
from dataflows.ingest.store import ChunkStore

__all__ = ["Finished", "Finishing", "finish"]

T = TypeVar("T")


class Retry(Protocol):
    """The storage retry policy (:meth:`IngestContext.with_storage_retry`)."""

    def __call__(self, what: str, call: Callable[[], T]) -> T: ...


@dataclass(frozen=True)
class Finishing:
    """What finishing one stream needs: copies, never the live state."""

    video_id: str
    chunks: tuple[ev.ChunkRef, ...]
    source_upload: str  # the multipart upload the source's parts were sent to
    part_etags: tuple[str, ...]


@dataclass(frozen=True)
class Finished:
    """The verified source, its manifest, and its probe (or why it is not a video)."""

    key: str
    sha256: str
    manifest: ev.Manifest
    probe: ev.Probe | None
    probe_error: ProbeError | None


def finish(
    store: ChunkStore, retry: Retry, facts: Finishing, file_sha: Callable[[], str | None]
) -> Finished:
    """Complete, record and probe one stream's source (runs on a completion thread).

    ``file_sha`` gives the file's SHA-256 as it was read (waiting for its hashing), or None
    after a resume, when a read-back of the source computes it. Raises ``UploadLost`` when the
    store lost the upload and holds no source of the chunks (the logic sends the bytes again)."""
    video_id, upload = facts.video_id, facts.source_upload
    chunks, etags = list(facts.chunks), list(facts.part_etags)
    key, vouched = retry("finish", lambda: store.finish_source(video_id, upload, chunks, etags))
    whole = file_sha() if vouched else None
    if whole is None:
        whole = retry("verify", lambda: store.verify(key, chunks))
    sha256 = whole
    # a file identical to a stored source names those bytes, and its own are removed (dedup)
    manifest = record_source(store, retry, video_id, key, chunks, sha256)
    key = store.layout.source_of(manifest, video_id)
    try:
        found, error = probe(store.presigned(key)), None
    except ProbeError as exc:  # its text never holds the presigned URL; scrubbed anyway
        found, error = None, exc
    return Finished(key, sha256, manifest, found, error)
