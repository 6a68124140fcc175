"""One batch of a stream's chunks: read from the file (or upload), hashed, and sent as parts of
the source's multipart upload.

The chunks' I/O overlaps on the ingest's I/O threads (the put of one part beside the read and
hash of the next), and all of it is done before the stream's state changes
(:func:`record_chunk`, called by ``IngestLogic`` which also numbers the status event): a snapshot
never records a part whose put is still in flight. A part sent but not yet recorded when the
process dies is simply sent again after the resume (the same part number overwrites it).
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

from connectors.multipart import MAX_PARTS
from core import events as ev
from dataflows.ingest import metrics
from dataflows.ingest.context import IngestContext
from dataflows.ingest.digest import FileDigest
from dataflows.ingest.sources import read_range
from dataflows.ingest.state import StreamState
from dataflows.ingest.store import VerificationError

__all__ = ["StoredChunk", "record_chunk", "store_batch"]


@dataclass(frozen=True)
class StoredChunk:
    """A chunk once stored: its place in the file, its digest, and its part's ETag."""

    offset: int
    length: int
    digest: str
    etag: str


def store_batch(
    ctx: IngestContext, state: StreamState, batch: list[tuple[int, int]], file_sha: FileDigest
) -> list[StoredChunk]:
    """Read, hash and send the chunks of ``batch`` (``(offset, length)`` pairs, in order) as
    parts of the source; begins the stream's multipart upload before its first chunk. The state
    is not changed otherwise: record each chunk returned with :func:`record_chunk`."""
    # backpressure: the previous batch's bytes are hashed before this batch is read, so
    # at most one batch per stream waits for the whole-file SHA-256 (RSS stays flat)
    file_sha.wait()
    first = len(state.chunks)
    if first + len(batch) > MAX_PARTS:
        raise VerificationError(
            f"{state.filename} needs more than {MAX_PARTS} chunks: raise the chunk size"
        )
    if not state.source_upload:
        upload = ctx.with_storage_retry("begin", lambda: ctx.store.begin_source(state.video_id))
        state.source_upload, state.part_etags = upload, []
    stored = list(
        ctx.io.map(lambda job: _read_and_put(ctx, state, first + job[0], *job[1]), enumerate(batch))
    )
    file_sha.feed([data for *_, data in stored])
    return [
        StoredChunk(offset, length, digest, etag)
        for (offset, length), (digest, etag, _) in zip(batch, stored, strict=True)
    ]


def _read_and_put(
    ctx: IngestContext, state: StreamState, index: int, offset: int, length: int
) -> tuple[str, str, bytes]:
    """Read and hash one chunk and send it as its part (runs on an I/O thread; touches no
    state): (digest, part ETag, the bytes)."""
    started = time.perf_counter()
    store, retry = ctx.store, ctx.with_storage_retry
    roots, video, upload = ctx.roots, state.video_id, state.source_upload
    data = retry("read", lambda: read_range(state, store.client, offset, length, roots=roots))
    chunk = ev.ChunkRef(
        index=index, offset=offset, size=length, sha256=hashlib.sha256(data).hexdigest()
    )
    etag = retry("put", lambda: store.put_part(video, upload, chunk, data))
    metrics.CHUNK_SECONDS.observe(time.perf_counter() - started)
    return chunk.sha256, etag, data


def record_chunk(state: StreamState, stored: StoredChunk) -> ev.ChunkRef:
    """A stored chunk into the stream's state (its chunks, part ETags, next offset), counted;
    the reference its status event carries."""
    chunk = ev.ChunkRef(
        index=len(state.chunks), offset=stored.offset, size=stored.length, sha256=stored.digest
    )
    state.chunks.append(chunk)
    state.part_etags.append(stored.etag)
    state.next_offset = stored.offset + stored.length
    metrics.BYTES_READ.inc(stored.length)
    metrics.CHUNKS.labels(result="stored").inc()
    return chunk
