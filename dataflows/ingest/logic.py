"""The ingest flow's per-stream stateful logic.

One instance per stream key. Bytes are cut into chunks as they arrive (a bounded number per
activation, so one large file never starves other streams on the worker), and the stream
completes when no event came for the stream timeout, at once for an upload, or, when
``close_is_final``, a close grace after a ``file.closed`` if the file is then a complete video
(``completion.py``: a close is a hint, not the end). The deadline is never persisted: a resumed
flow gives every replayed stream a fresh grace period. A completed stream is discarded, so no state
is kept for finished streams.

Completing (completing the source's multipart upload, the manifest, ffprobe) runs on a completion
thread (``dataflows/ingest/completion.py``), polled from the stream's timer, so the other
streams of the worker keep moving meanwhile. Events for a stream that is completing wait in its
state and are applied once it ended, as if they had come after its end (a file that grew after
it was final becomes a new video, as it does when the event comes later).
"""

from __future__ import annotations

import time
from concurrent.futures import Future
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from bytewax.operators import StatefulLogic
from minio.error import S3Error
from urllib3.exceptions import HTTPError

from core import events as ev
from core.errors import public_reason
from core.ids import upload_video_id, video_id_for
from core.logs import get_logger
from core.names import display_filename
from dataflows.ingest import metrics
from dataflows.ingest.chunking import plan_chunks
from dataflows.ingest.closing import CloseGrace, ends_as_a_video
from dataflows.ingest.completion import Finished, Finishing, finish
from dataflows.ingest.context import IngestContext, StorageUnavailable
from dataflows.ingest.digest import FileDigest
from dataflows.ingest.files import RefusedFile, open_regular
from dataflows.ingest.parts import PartPipeline, store_parts
from dataflows.ingest.requests import transcode_request
from dataflows.ingest.sources import SourceVanished
from dataflows.ingest.state import StreamState
from dataflows.ingest.store import UploadLost, VerificationError
from dataflows.ingest.uploads import UploadFinishing, finish_upload, index_batch
from dataflows.kafka_io import Inbound, Outbound

__all__ = ["IngestContext", "IngestLogic", "StorageUnavailable"]

log = get_logger("vidflow.ingest")
T = TypeVar("T")
S = TypeVar("S", bound=ev.StatusBase)
CHUNKS_PER_ACTIVATION = 8
COMPLETION_POLL = 0.02  # seconds between two looks at a completing stream (its end is waited for)


class IngestLogic(StatefulLogic[Inbound, Outbound, StreamState]):
    """Cut, store and complete one stream."""

    def __init__(self, ctx: IngestContext, resumed: StreamState | None) -> None:
        self.ctx = ctx
        self.state = resumed
        self.deadline = time.time() + ctx.settings.ingest.stream_timeout
        self.done = False
        self.close = CloseGrace(ctx.settings.ingest.close_grace)
        fresh = resumed is None or resumed.next_offset == 0
        self.file_sha = FileDigest(known=fresh)
        self.parts = PartPipeline(ctx)  # not state either: what a snapshot names is recorded
        # Not state (a future): a stream resumed while completing completes again from its facts.
        self.completion: Future[Finished] | None = None

    # ---------------------------------------------------------------- bytewax callbacks

    def on_item(self, value: Inbound) -> tuple[list[Outbound], bool]:
        if self.state is not None and self._completing():
            self.state.deferred.append(value)  # applied once the stream ended (_ended)
            out = self._advance()
            return out + self._ended(), self._retain()
        out = []
        event = value.event
        timeout = self.ctx.settings.ingest.stream_timeout
        if isinstance(event, ev.FileChanged | ev.FileClosed):
            out += self._on_file(value, event)
            self.deadline = time.time() + timeout
        elif isinstance(event, ev.FileDeleted):
            if self.state is not None:
                name = self.state.filename
                out.append(self._failed("ingest", f"{name} was deleted before it completed"))
            return out, StatefulLogic.DISCARD
        elif isinstance(event, ev.UploadCompleted):
            if self.state is None:  # a replayed duplicate of a finished upload starts over
                out += self._start_upload(value, event)
        else:
            log.warning("ignoring an event that does not belong to ingest", type=event.type)
        out += self._advance()
        return out, self._retain()

    def on_notify(self) -> tuple[list[Outbound], bool]:
        out: list[Outbound] = []
        if self.state is not None and time.time() >= self.deadline and not self.state.final:
            out += self._check_file_at_deadline()
        out += self._settle_close()
        out += self._advance()
        return out + self._ended(), self._retain()

    def on_eof(self) -> tuple[list[Outbound], bool]:
        return [], self._retain()

    def notify_at(self) -> datetime | None:
        if self.state is None or self.done:
            return None
        if self.completion is not None:
            return datetime.now(UTC) + timedelta(seconds=COMPLETION_POLL)
        chunk_size = self.ctx.settings.ingest.chunk_size
        if self.parts or self.state.backlog(chunk_size) or self.state.final:
            return datetime.now(UTC)  # more work now: come back right after other keys ran
        wake = min(self.deadline, self.close.wake_at(time.time()) or self.deadline)
        return datetime.fromtimestamp(wake, UTC)

    def snapshot(self) -> StreamState:
        assert self.state is not None
        state = self.state
        return StreamState(
            **{
                **vars(state),
                "chunks": list(state.chunks),
                "part_etags": list(state.part_etags),
                "deferred": list(state.deferred),
            }
        )

    # ---------------------------------------------------------------- stream lifecycle

    def _retain(self) -> bool:
        return StatefulLogic.DISCARD if self.done or self.state is None else StatefulLogic.RETAIN

    def _completing(self) -> bool:
        """Every byte is read and the stream is final: it is completing (or about to)."""
        state = self.state
        return (
            state is not None and not self.done and state.final
            and bool(state.chunks) and state.next_offset >= state.known_size
        )  # fmt: skip

    def _ended(self) -> list[Outbound]:
        """Once the stream ended, the events that waited for it are applied to a fresh stream
        of the key, in their order, as a new logic would have had them."""
        if not self.done or self.state is None or not self.state.deferred:
            return []
        waiting, out = self.state.deferred, []
        for value in waiting:
            if self.done:
                self.state, self.done, self.completion = None, False, None
                self.deadline = time.time() + self.ctx.settings.ingest.stream_timeout
                self.file_sha, self.parts = FileDigest(), PartPipeline(self.ctx)
            items, _ = self.on_item(value)
            out += items
        return out

    def _status(self, cls: type[S], **fields: Any) -> Outbound:
        state = self.state
        assert state is not None
        seq = state.next_seq()
        tag = str(cls.__struct_config__.tag)
        event = cls(
            id=ev.event_id(state.run, seq, tag), video_id=state.video_id, run=state.run, seq=seq,
            **fields,
        )  # fmt: skip
        return Outbound(self.ctx.status_topic, event)

    def _abandon_source(self, state: StreamState) -> None:
        """Best effort: an unfinished multipart source of a restarted or failed stream (once
        none of its parts is in flight any more)."""
        self.parts.discard()
        if not state.source_upload:
            return
        try:
            self.ctx.store.abandon_source(state.video_id, state.source_upload)
        except (HTTPError, OSError, S3Error) as exc:
            log.warning("could not abort a multipart source", video=state.video_id, error=str(exc))
        state.source_upload, state.part_etags = "", []

    def _failed(self, stage: str, reason: str, detail: BaseException | None = None) -> Outbound:
        """The stream's end with a public reason (scrubbed of URLs, signatures, local paths);
        the whole reason and detail go to the log with the video id."""
        self.done = True
        if self.state is not None:
            self._abandon_source(self.state)
        metrics.STREAMS.labels(outcome="failed").inc()
        log.warning(
            "ingest failed", video=self.state.video_id if self.state else "", stage=stage,
            reason=reason, detail=repr(detail) if detail is not None else "",
        )  # fmt: skip
        return self._status(ev.JobFailed, reason=public_reason(reason), stage=stage)

    def _on_file(self, value: Inbound, event: ev.FileChanged | ev.FileClosed) -> list[Outbound]:
        out: list[Outbound] = []
        state = self.state
        # a new version of the file is a new video, named after the event that starts it
        video_id = video_id_for(event.stream_id, value.topic, value.partition, value.offset)
        if state is not None:
            replaced = bool(event.inode and state.inode and event.inode != state.inode)
            shrunk = event.size < state.known_size
            if replaced or shrunk:
                why = "the file was replaced" if replaced else "the file shrank"
                successor = video_id_for(
                    event.stream_id, value.topic, value.partition, value.offset
                )
                reason = f"{why}; its ingest starts over as video {successor}"
                out.append(self._status(ev.IngestRestarted, reason=reason))
                self._abandon_source(state)
                self.file_sha = FileDigest()
                self.close.forget()
                state = None
        if state is None:
            state = StreamState(
                stream_id=event.stream_id,
                video_id=video_id,
                origin="watch",
                location=event.path,
                filename=display_filename(event.path),
                inode=event.inode,
            )
            self.state = state
            out.append(
                self._status(ev.IngestStarted, origin="watch", filename=state.filename,
                             stream_id=state.stream_id)
            )  # fmt: skip
        state.known_size = event.size
        state.inode = event.inode or state.inode
        if self.ctx.settings.ingest.close_is_final:
            self.close.heard(event, time.time())
        return out

    def _settle_close(self) -> list[Outbound]:
        """A close whose grace ran out with no write after it ends the stream if the file is a
        complete video; otherwise the stream goes on waiting for its timeout."""
        state = self.state
        if state is None or state.final or self.done:
            self.close.forget()
            return []
        location, roots, inode = state.location, self.ctx.roots, state.inode

        def check(size: int) -> Future[bool]:
            return self.ctx.io.submit(ends_as_a_video, location, roots, inode=inode, size=size)

        size = self.close.settle(time.time(), check)
        if size is not None and size >= state.known_size:
            state.known_size = size
            state.final = True
        return []

    def _start_upload(self, value: Inbound, event: ev.UploadCompleted) -> list[Outbound]:
        self.state = StreamState(
            stream_id=f"upload:{event.upload_id}",
            video_id=upload_video_id(event.upload_id),
            origin="upload",
            location=event.key,
            bucket=event.bucket,
            filename=display_filename(event.filename) or event.upload_id,
            owner=event.owner,  # the object's owner metadata, put there by admission
            profile=event.profile,
            known_size=event.size,
            final=True,
        )
        return [
            self._status(ev.IngestStarted, origin="upload", filename=self.state.filename,
                         owner=event.owner, stream_id=self.state.stream_id)
        ]  # fmt: skip

    def _check_file_at_deadline(self) -> list[Outbound]:
        """The stream went quiet: take the file's real size (a late event may be missing)."""
        state = self.state
        assert state is not None
        name = state.filename
        try:
            with open_regular(state.location, self.ctx.roots, inode=state.inode) as (_, facts):
                size = facts.st_size
        except FileNotFoundError:
            return [self._failed("ingest", f"{name} disappeared before it completed")]
        except RefusedFile as exc:  # replaced by a link, a FIFO, another file: refused
            return [self._failed("ingest", f"{name} cannot be read: {exc}")]
        except OSError as exc:  # no permission, an I/O error: waiting does not heal it
            reason = exc.strerror or type(exc).__name__
            return [self._failed("ingest", f"{name} cannot be read: {reason}")]
        if size < state.known_size:
            return [self._failed("ingest", f"{name} shrank while it was being read")]
        state.known_size = size
        state.final = True
        return []

    def _advance(self) -> list[Outbound]:
        state = self.state
        if state is None or self.done:
            return []
        chunk_size = self.ctx.settings.ingest.chunk_size
        start = self.parts.frontier(state)  # chunks in flight are planned already
        ranges = plan_chunks(start, state.known_size, chunk_size, final=state.final)
        out: list[Outbound] = []
        try:
            # a snapshot of an older layout (uploads have no parts: their object is the source)
            if state.origin == "watch" and len(state.part_etags) != len(state.chunks):
                self._send_again(state, "its parts are not all known")
                return out
            if ranges or self.parts:
                out += self._read_batch(state, ranges)
            if state.final and state.next_offset >= state.known_size:
                out += self._complete()
        except StorageUnavailable:
            raise
        except UploadLost as exc:
            self._send_again(state, str(exc))
        except (SourceVanished, VerificationError) as exc:
            out.append(self._failed("ingest", str(exc), exc))
        except S3Error as exc:
            reason = f"{state.filename}: the object store refused: {exc.code}"
            out.append(self._failed("ingest", reason, exc))
        except Exception as exc:  # one stream's error must not stop the flow
            log.exception("ingest step failed", video=state.video_id)
            out.append(self._failed("ingest", f"{state.filename}: {type(exc).__name__}", exc))
        return out

    def _send_again(self, state: StreamState, why: str) -> None:
        """The stream's source upload is gone (expired or aborted while the flow was down) or
        not usable: its bytes are read and sent again from the start, in a new upload."""
        log.warning("sending the stream's bytes again", video=state.video_id, why=why)
        self._abandon_source(state)
        state.chunks, state.part_etags, state.next_offset = [], [], 0
        self.completion = None
        self.file_sha = FileDigest()

    def _read_batch(self, state: StreamState, ranges: list[tuple[int, int]]) -> list[Outbound]:
        """Send the next chunks as parts and record those stored (``dataflows/ingest/parts.py``),
        at most ``CHUNKS_PER_ACTIVATION``; their status events. An upload's chunks are only read
        and hashed: the uploaded object is the source (``dataflows/ingest/uploads.py``)."""
        if state.origin == "upload":
            batch = ranges[:CHUNKS_PER_ACTIVATION]
            indexed = index_batch(self.ctx, state, batch, self.file_sha)
            return [
                self._status(ev.ChunkStored, chunk=c, bytes_so_far=c.offset + c.size)
                for c in indexed
            ]
        stored = store_parts(self.parts, state, ranges, self.file_sha, CHUNKS_PER_ACTIVATION)
        return [
            self._status(ev.ChunkStored, chunk=c, bytes_so_far=c.offset + c.size) for c in stored
        ]

    def _complete(self) -> list[Outbound]:
        """Start the stream's completion on a completion thread, or see whether it ended (it
        raises, through its future, what the steps raise: ``_advance`` handles it)."""
        state = self.state
        assert state is not None
        if not state.chunks:
            return [self._failed("ingest", "the file is empty (0 bytes): nothing to process")]
        if self.completion is None and state.origin == "upload":
            upload = UploadFinishing(state.video_id, state.location, tuple(state.chunks))
            self.completion = self.ctx.completing.submit(
                finish_upload, self.ctx.store, self.ctx.with_storage_retry, upload,
                self.file_sha.hexdigest,
            )  # fmt: skip
            return []
        if self.completion is None:
            facts = Finishing(
                video_id=state.video_id, chunks=tuple(state.chunks),
                source_upload=state.source_upload, part_etags=tuple(state.part_etags),
            )  # fmt: skip
            ctx, digest = self.ctx, self.file_sha.hexdigest
            self.completion = ctx.completing.submit(
                finish, ctx.store, ctx.with_storage_retry, facts, digest
            )
            return []
        if not self.completion.done():
            return []
        completion, self.completion = self.completion, None
        return self._completed(completion.result())

    def _completed(self, done: Finished) -> list[Outbound]:
        """The stream's end, from what its completion found."""
        state = self.state
        assert state is not None
        state.source_upload, state.part_etags = "", []  # completed
        manifest, store = done.manifest, self.ctx.store
        out = [self._status(ev.IngestCompleted, manifest=manifest)]
        if done.probe is None:
            out.append(
                self._failed("probe", f"{state.filename}: {done.probe_error}", done.probe_error)
            )
            return out
        out.append(self._status(ev.ProbeCompleted, probe=done.probe))
        request = transcode_request(store.bucket, store.layout, state, done)
        out.append(Outbound(self.ctx.jobs_topic, request))
        self.done = True
        metrics.STREAMS.labels(outcome="completed").inc()
        log.info(
            "ingest completed", video=state.video_id, size=manifest.size, chunks=len(state.chunks)
        )
        return out
