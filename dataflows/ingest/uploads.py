"""The upload branch of ingest: the uploaded object *is* the source, never copied.

An upload lands as ``incoming/{upload}/source`` (the portal composes a browser's parts there,
each checked on arrival against its ``x-amz-checksum-sha256``; ``vidflow submit`` puts it). Ingest
reads it once, by ranged GETs of one chunk each, to hash every chunk and the whole file, and
writes the manifest naming that object (``source_key``): no ``chunks/`` objects, no composed
copy, no read-back. Each chunk stays fetchable by its range and verifiable by its digest.

A file whose SHA-256 an existing source already has stores nothing: its manifest names those
bytes and its own upload is removed (``dedup.adopt``).

A replayed announcement of an upload that already became a video (its upload removed as a
duplicate, or still there) completes again from the manifest it has: the same manifest, the
same job id, no bytes read twice when the upload is gone.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

import msgspec
from minio.error import S3Error

from connectors.ffmpeg import ProbeError, probe
from connectors.storage import MISSING_CODES, read_object
from core import events as ev
from core.layout import ForeignSource
from core.logs import get_logger
from dataflows.ingest import metrics
from dataflows.ingest.completion import Finished
from dataflows.ingest.context import IngestContext
from dataflows.ingest.dedup import record_source
from dataflows.ingest.digest import FileDigest
from dataflows.ingest.sources import SourceVanished, read_range
from dataflows.ingest.state import StreamState
from dataflows.ingest.store import ChunkStore

__all__ = ["UploadFinishing", "finish_upload", "index_batch"]

log = get_logger("vidflow.ingest")
T = TypeVar("T")


class Retry(Protocol):
    """The storage retry policy (:meth:`IngestContext.with_storage_retry`)."""

    def __call__(self, what: str, call: Callable[[], T]) -> T: ...


@dataclass(frozen=True)
class UploadFinishing:
    """What finishing one upload needs: copies, never the live state."""

    video_id: str
    key: str  # the uploaded object, ``incoming/{upload}/source``
    chunks: tuple[ev.ChunkRef, ...]


def index_batch(
    ctx: IngestContext, state: StreamState, batch: list[tuple[int, int]], file_sha: FileDigest
) -> list[ev.ChunkRef]:
    """Read and hash one batch of the uploaded object's chunks (``(offset, length)`` pairs in
    order, overlapping on the I/O threads) and record them in the stream's state; stores nothing.

    An upload gone before its first byte was read, of a video whose manifest already exists (a
    replayed announcement after the upload was removed as a duplicate), takes its chunks from
    that manifest instead, and ``file_sha`` is forgotten so completion reuses the manifest."""
    try:
        read = list(ctx.io.map(lambda job: _read_and_hash(ctx, state, *job), batch))
    except SourceVanished:
        if state.next_offset or state.chunks:
            raise
        previous = ctx.with_storage_retry("manifest", lambda: _sourced(ctx.store, state.video_id))
        if previous is None or previous.size != state.known_size:
            raise
        log.info("upload already a video: completing from its manifest", video=state.video_id)
        file_sha.forget()
        state.chunks = list(previous.chunks)
        state.next_offset = previous.size
        return list(previous.chunks)
    file_sha.feed([data for _, data in read])
    recorded = []
    for (offset, length), (digest, _) in zip(batch, read, strict=True):
        chunk = ev.ChunkRef(index=len(state.chunks), offset=offset, size=length, sha256=digest)
        state.chunks.append(chunk)
        state.next_offset = offset + length
        metrics.BYTES_READ.inc(length)
        metrics.CHUNKS.labels(result="indexed").inc()
        recorded.append(chunk)
    return recorded


def _read_and_hash(
    ctx: IngestContext, state: StreamState, offset: int, length: int
) -> tuple[str, bytes]:
    """One chunk of the upload, by range, and its SHA-256 (on an I/O thread; no state)."""
    started = time.perf_counter()
    client, roots = ctx.store.client, ctx.roots
    data = ctx.with_storage_retry(
        "read", lambda: read_range(state, client, offset, length, roots=roots)
    )
    digest = hashlib.sha256(data).hexdigest()
    metrics.CHUNK_SECONDS.observe(time.perf_counter() - started)
    return digest, data


def finish_upload(
    store: ChunkStore, retry: Retry, facts: UploadFinishing, file_sha: Callable[[], str | None]
) -> Finished:
    """The upload's manifest (naming the upload, or identical bytes already stored) and its
    probe (runs on a completion thread). ``file_sha`` is the SHA-256 as the chunks were read,
    or None after a resume or a replay: then the manifest the video has is reused, or the
    upload is read once more to hash it."""
    chunks = list(facts.chunks)
    sha256 = file_sha()
    manifest = None
    if sha256 is None:
        previous = retry("manifest", lambda: _sourced(store, facts.video_id))
        if previous is not None and previous.chunks == chunks:
            manifest, sha256 = previous, previous.sha256
        else:
            sha256 = retry("hash", lambda: store.verify(facts.key, chunks))
    if manifest is None:  # naming the upload, or identical bytes already stored (then dropped)
        manifest = record_source(store, retry, facts.video_id, facts.key, chunks, sha256)
    key = store.layout.source_of(manifest, facts.video_id)
    try:
        found, error = probe(store.presigned(key)), None
    except ProbeError as exc:  # its text never holds the presigned URL; scrubbed anyway
        found, error = None, exc
    return Finished(key, sha256, manifest, found, error)


def _sourced(store: ChunkStore, video_id: str) -> ev.Manifest | None:
    """The video's manifest if it has one whose bytes are still there, else None."""
    body = read_object(store.client, store.bucket, store.layout.manifest(video_id))
    if body is None:
        return None
    try:
        manifest = msgspec.json.decode(body, type=ev.Manifest)
        key = store.layout.source_of(manifest, video_id)
        stat = store.client.stat_object(store.bucket, key)
    except (msgspec.MsgspecError, ForeignSource):
        return None
    except S3Error as exc:
        if exc.code in MISSING_CODES:
            return None
        raise
    return manifest if stat.size == manifest.size else None
