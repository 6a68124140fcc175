"""One batch of a stream's chunks: read from the file (or upload), hashed, stored, and copied
into the source being composed.

The chunks' I/O overlaps on the ingest's I/O threads, and all of it is done before the stream's
state changes (:func:`record_chunk`, called by ``IngestLogic`` which also numbers the status
event): a snapshot never records a chunk whose put is still in flight.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from core import events as ev
from dataflows.ingest import metrics
from dataflows.ingest.context import IngestContext
from dataflows.ingest.digest import FileDigest
from dataflows.ingest.sources import read_range
from dataflows.ingest.state import StreamState

__all__ = ["StoredChunk", "record_chunk", "store_batch"]


@dataclass(frozen=True)
class StoredChunk:
    """A chunk once stored: its place in the file, its digest, whether the store had it
    already, and its part ETag in the source being composed ("" when it was not copied)."""

    offset: int
    length: int
    digest: str
    deduplicated: bool
    etag: str


def store_batch(
    ctx: IngestContext, state: StreamState, batch: list[tuple[int, int]], file_sha: FileDigest
) -> list[StoredChunk]:
    """Read, store and copy the chunks of ``batch`` (``(offset, length)`` pairs, in order);
    begins the stream's multipart source before its first chunk. The state is not changed
    otherwise: record each chunk returned with :func:`record_chunk`."""
    # backpressure: the previous batch's bytes are hashed before this batch is read, so
    # at most one batch per stream waits for the whole-file SHA-256 (RSS stays flat)
    file_sha.wait()
    if not state.source_upload and not state.chunks:
        upload = ctx.with_storage_retry("begin", lambda: ctx.store.begin_source(state.video_id))
        state.source_upload = upload
    first = len(state.chunks)
    stored = list(
        ctx.io.map(
            lambda job: _read_and_store(ctx, state, first + job[0], *job[1]), enumerate(batch)
        )
    )
    file_sha.feed([data for *_, data in stored])
    return [
        StoredChunk(offset, length, digest, deduplicated, etag)
        for (offset, length), (digest, deduplicated, etag, _) in zip(batch, stored, strict=True)
    ]


def _read_and_store(
    ctx: IngestContext, state: StreamState, index: int, offset: int, length: int
) -> tuple[str, bool, str, bytes]:
    """Read, hash and store one chunk, and copy it into the source being composed (runs on
    an I/O thread; touches no state): (digest, deduplicated, part ETag, the bytes)."""
    started = time.perf_counter()
    store, retry = ctx.store, ctx.with_storage_retry
    roots = ctx.roots
    data = retry("read", lambda: read_range(state, store.client, offset, length, roots=roots))
    digest, deduplicated = retry("put", lambda: store.put_chunk(data))
    etag = ""
    if state.source_upload and len(state.part_etags) == len(state.chunks):
        chunk = ev.ChunkRef(index=index, offset=offset, size=length, sha256=digest)
        etag = retry(
            "copy",
            lambda: store.copy_chunk_into_source(state.video_id, state.source_upload, chunk),
        )
    metrics.CHUNK_SECONDS.observe(time.perf_counter() - started)
    return digest, deduplicated, etag, data


def record_chunk(state: StreamState, stored: StoredChunk) -> ev.ChunkRef:
    """A stored chunk into the stream's state (its chunks, part ETags, next offset), counted;
    the reference its status event carries."""
    chunk = ev.ChunkRef(
        index=len(state.chunks), offset=stored.offset, size=stored.length, sha256=stored.digest
    )
    state.chunks.append(chunk)
    if stored.etag:
        state.part_etags.append(stored.etag)
    state.next_offset = stored.offset + stored.length
    metrics.BYTES_READ.inc(stored.length)
    metrics.CHUNKS.labels(result="deduplicated" if stored.deduplicated else "stored").inc()
    return chunk
