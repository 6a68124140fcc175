"""What every stream's logic of one ingest process shares: settings, the chunk store, the
thread pools its blocking work runs on (never the Bytewax worker thread), the storage retry."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from connectors.storage import retry_storage
from core.roots import resolve_roots
from core.settings import Settings
from dataflows.ingest.store import ChunkStore

__all__ = ["IngestContext", "StorageUnavailable"]

T = TypeVar("T")
IO_THREADS = 4
COMPLETION_THREADS = 2  # streams of one process completing at once (each reads back in parallel)


class StorageUnavailable(RuntimeError):
    """The object store stayed unreachable for the whole retry budget: not this stream's fault,
    so the flow stops (and resumes from its snapshot) rather than failing the stream."""


class IngestContext:
    """What every stream's logic shares: settings, the chunk store, the I/O threads."""

    def __init__(self, settings: Settings, store: ChunkStore) -> None:
        self.settings = settings
        self.store = store
        self.status_topic = settings.kafka.topic_status
        self.jobs_topic = settings.kafka.topic_jobs
        # a stream's file is opened as untrusted input on every read: under these, regular
        self.roots = resolve_roots(settings.ingest.roots(settings.home))
        # reads, hashes (hashlib releases the GIL) and puts of several chunks overlap; a
        # stream keeps up to ``parts.PARTS_IN_FLIGHT`` of them busy
        self.io = ThreadPoolExecutor(max_workers=IO_THREADS, thread_name_prefix="ingest-io")
        # a stream's completion, off the worker thread (its read-back uses ``io`` beside it)
        self.completing = ThreadPoolExecutor(
            max_workers=COMPLETION_THREADS, thread_name_prefix="ingest-complete"
        )

    def with_storage_retry(self, what: str, call: Callable[[], T]) -> T:
        """Storage that goes away is waited for, not crashed on (bounded, with backoff)."""
        return retry_storage(what, call, exhausted=StorageUnavailable)
