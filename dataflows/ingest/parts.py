"""A watched stream's parts in flight: each chunk read, hashed and sent as a part of the source's
multipart upload on an I/O thread, several at once and across activations, and recorded in order
once stored.

Why a pipeline and not batches: a batch that had to drain before the next one began left the I/O
threads idle behind its last puts, and hashing its bytes into the whole-file SHA-256 held the
next batch back; the object store then waited for the flow (issue 13: 0.66 of a plain put).
Here the next chunks are read and sent while the earlier ones finish, at most
``PARTS_IN_FLIGHT`` per stream: a chunk's bytes live from its read until it is recorded and
hashed into the file's digest, so memory stays bounded whatever the file's size.

What a snapshot sees does not change: the state takes a chunk (:func:`record_chunk`, on the
worker thread) only once its put returned and every chunk before it was taken, so a snapshot
never names a part in flight. A part in flight when the process dies is simply sent again after
the resume (the same part number overwrites it); the parts in flight when a stream restarts or
fails are waited for before its upload is aborted (:meth:`PartPipeline.discard`).
"""

from __future__ import annotations

import hashlib
import time
from collections import deque
from concurrent import futures
from dataclasses import dataclass, field

from connectors.multipart import MAX_PARTS
from core import events as ev
from dataflows.ingest import metrics
from dataflows.ingest.context import IngestContext
from dataflows.ingest.digest import FileDigest
from dataflows.ingest.sources import read_range
from dataflows.ingest.state import StreamState
from dataflows.ingest.store import VerificationError

__all__ = ["PARTS_IN_FLIGHT", "PartPipeline", "StoredChunk", "record_chunk", "store_parts"]

PARTS_IN_FLIGHT = 4  # per stream; at most the I/O threads (each part holds one from read to put)
HEAD_WAIT = 1.0  # seconds an activation waits for its oldest part (other streams wait meanwhile)


@dataclass(frozen=True)
class StoredChunk:
    """A chunk once stored: its place in the file, its digest, its part's ETag and its bytes
    (kept until they are hashed into the file's digest)."""

    offset: int
    length: int
    digest: str
    etag: str
    data: bytes = field(repr=False)


@dataclass(frozen=True)
class _InFlight:
    offset: int
    length: int
    future: futures.Future[StoredChunk]


class PartPipeline:
    """One stream's parts being read, hashed and sent, oldest first. Not state (futures do not
    pickle): a resumed stream starts with none, from the chunks its snapshot recorded."""

    def __init__(self, ctx: IngestContext) -> None:
        self._ctx = ctx
        self._flight: deque[_InFlight] = deque()

    def __len__(self) -> int:
        return len(self._flight)

    def frontier(self, state: StreamState) -> int:
        """Where the next chunk to send starts: after the newest part in flight, else after
        the last chunk recorded."""
        if self._flight:
            newest = self._flight[-1]
            return newest.offset + newest.length
        return state.next_offset

    def send(self, state: StreamState, ranges: list[tuple[int, int]]) -> int:
        """Start the parts of the first ``ranges`` (``(offset, length)`` from the frontier, in
        order) while fewer than ``PARTS_IN_FLIGHT`` are in flight; begins the stream's
        multipart upload before its first part. How many were started."""
        ranges = ranges[: max(0, PARTS_IN_FLIGHT - len(self._flight))]
        if not ranges:
            return 0
        first = len(state.chunks) + len(self._flight)
        if first + len(ranges) > MAX_PARTS:
            raise VerificationError(
                f"{state.filename} needs more than {MAX_PARTS} chunks: raise the chunk size"
            )
        ctx = self._ctx
        if not state.source_upload:
            begun = ctx.with_storage_retry("begin", lambda: ctx.store.begin_source(state.video_id))
            state.source_upload, state.part_etags = begun, []
        upload = state.source_upload
        for number, (offset, length) in enumerate(ranges, start=first):
            job = ctx.io.submit(_read_and_put, ctx, state, upload, number, offset, length)
            self._flight.append(_InFlight(offset, length, job))
        return len(ranges)

    def take(self, most: int, wait: float) -> list[StoredChunk]:
        """The stored parts at the head, oldest first (at most ``most``), after waiting up to
        ``wait`` seconds for the oldest one. A part that failed raises what its read or put
        raised, once the stored parts before it have been taken."""
        if not self._flight:
            return []
        futures.wait([self._flight[0].future], timeout=wait)
        taken: list[StoredChunk] = []
        while self._flight and len(taken) < most and self._flight[0].future.done():
            head = self._flight[0].future
            if taken and head.exception() is not None:
                break  # the parts stored before it are recorded first; it raises next time
            self._flight.popleft()
            taken.append(head.result())
        return taken

    def discard(self) -> None:
        """Forget every part in flight: those not started are cancelled, the running ones
        waited for (the upload is aborted only once nothing writes to it); their outcome is
        moot, the stream starts over or ends."""
        for part in self._flight:
            part.future.cancel()
        futures.wait([part.future for part in self._flight])
        self._flight.clear()


def store_parts(
    parts: PartPipeline,
    state: StreamState,
    ranges: list[tuple[int, int]],
    file_sha: FileDigest,
    most: int,
) -> list[ev.ChunkRef]:
    """One activation of a watched stream: start what fits of ``ranges`` (planned from
    ``parts.frontier``), record up to ``most`` stored parts in order, start what they made room
    for, then hash the recorded bytes into the file's digest while those parts are in flight.
    The references the recorded chunks' status events carry."""
    started = parts.send(state, ranges)
    stored = parts.take(most, HEAD_WAIT)
    recorded = [record_chunk(state, chunk) for chunk in stored]
    parts.send(state, ranges[started:])
    file_sha.feed([chunk.data for chunk in stored])
    return recorded


def _read_and_put(
    ctx: IngestContext, state: StreamState, upload: str, index: int, offset: int, length: int
) -> StoredChunk:
    """Read and hash one chunk and send it as its part of ``upload`` (runs on an I/O thread;
    reads the stream's fixed facts, changes nothing)."""
    started = time.perf_counter()
    store, retry, roots, video = ctx.store, ctx.with_storage_retry, ctx.roots, state.video_id
    data = retry("read", lambda: read_range(state, store.client, offset, length, roots=roots))
    chunk = ev.ChunkRef(
        index=index, offset=offset, size=length, sha256=hashlib.sha256(data).hexdigest()
    )
    etag = retry("put", lambda: store.put_part(video, upload, chunk, data))
    metrics.CHUNK_SECONDS.observe(time.perf_counter() - started)
    return StoredChunk(offset, length, chunk.sha256, etag, data)


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
