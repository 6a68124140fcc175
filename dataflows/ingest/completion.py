"""The blocking end of a stream, run off the Bytewax worker thread.

Finishing the source (completing its multipart upload, or composing it in one go), reading it
back against the chunks' digests, writing the manifest and probing it take from a second to
minutes (a read-back is as long as the file). On the worker thread they would stall every other
stream of the worker and its snapshots, so :class:`IngestLogic` submits :func:`finish` to a
thread pool and polls the future from its timer, as the transcode steps poll their children.

:func:`finish` touches no step state: it gets copies of the facts it needs and returns what
happened; the logic turns that into status events on the worker thread. Its errors are raised
(through the future) exactly as they were when these steps ran inline, so the logic handles them
in one place. A stream killed mid-way finishes again on resume from its snapshot, which still
holds the facts (a multipart upload completed before the kill is gone: the source is then
composed again from the chunks).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol, TypeVar

from minio.error import S3Error
from urllib3.exceptions import HTTPError

from connectors.ffmpeg import ProbeError, probe
from core import events as ev
from core.logs import get_logger
from dataflows.ingest.dedup import record_source
from dataflows.ingest.store import ChunkStore

__all__ = ["Finished", "Finishing", "finish"]

log = get_logger("vidflow.ingest")
T = TypeVar("T")


class Retry(Protocol):
    """The storage retry policy (:meth:`IngestContext.with_storage_retry`)."""

    def __call__(self, what: str, call: Callable[[], T]) -> T: ...


ParallelMap = Callable[[Callable[[ev.ChunkRef], bool], Iterable[ev.ChunkRef]], Iterator[bool]]


@dataclass(frozen=True)
class Finishing:
    """What finishing one stream needs: copies, never the live state."""

    video_id: str
    chunks: tuple[ev.ChunkRef, ...]
    source_upload: str  # the multipart upload the source was composed in ("" if none)
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
    store: ChunkStore,
    retry: Retry,
    facts: Finishing,
    file_sha: Callable[[], str | None],
    parallel_map: ParallelMap,
) -> Finished:
    """Finish, verify, record and probe one stream's source (runs on a completion thread).

    ``file_sha`` gives the file's SHA-256 as it was read (waiting for its hashing), or None
    after a resume, when the read-back computes it; ``parallel_map`` spreads the read-back."""
    key = _compose(store, retry, facts)
    sha256 = _verify(store, retry, facts, key, file_sha, parallel_map)
    chunks = list(facts.chunks)
    # a file identical to a stored source names those bytes, and its own are removed (dedup)
    manifest = record_source(store, retry, facts.video_id, key, chunks, sha256)
    key = store.layout.source_of(manifest, facts.video_id)
    try:
        found, error = probe(store.presigned(key)), None
    except ProbeError as exc:  # its text never holds the presigned URL; scrubbed anyway
        found, error = None, exc
    return Finished(key, sha256, manifest, found, error)


def _compose(store: ChunkStore, retry: Retry, facts: Finishing) -> str:
    """Finish the source composed while chunks arrived, or compose it now in one go (after a
    resume lost track of the parts, or when the store no longer knows the upload)."""
    video_id, upload = facts.video_id, facts.source_upload
    if upload and len(facts.part_etags) == len(facts.chunks):
        etags = list(facts.part_etags)
        try:
            return retry("finish", lambda: store.finish_source(video_id, upload, etags))
        except S3Error as exc:
            if exc.code != "NoSuchUpload":
                raise
            log.info("multipart source gone, composing it again", video=video_id)
    elif upload:
        try:  # best effort: its parts are no longer all known
            store.abandon_source(video_id, upload)
        except (HTTPError, OSError, S3Error) as exc:
            log.warning("could not abort a multipart source", video=video_id, error=str(exc))
    chunks = list(facts.chunks)
    return retry("compose", lambda: store.compose(video_id, chunks))


def _verify(
    store: ChunkStore,
    retry: Retry,
    facts: Finishing,
    key: str,
    file_sha: Callable[[], str | None],
    parallel_map: ParallelMap,
) -> str:
    """The source's SHA-256, after checking every byte of it against the chunks' digests."""
    chunks = list(facts.chunks)
    whole = file_sha()
    if whole is None:
        return retry("verify", lambda: store.verify(key, chunks))
    retry("verify", lambda: store.verify_chunks(key, chunks, parallel_map))
    # every byte equals the file's byte at the same offset, so their digests agree
    return whole
