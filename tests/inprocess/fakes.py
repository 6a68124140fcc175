"""An in-memory chunk store: the ingest flow's logic without an object store.

For the pure logic only (chunk planning, completion, versions, restarts): S3 semantics (per-part
checksums, a lost upload) stay with the integration tests on real MinIO. What
FFmpeg probes is a real file: :meth:`MemoryChunkStore.presigned` writes the object to disk.
"""

from __future__ import annotations

import hashlib
import threading
import uuid
from pathlib import Path
from typing import Any, cast

from minio import Minio

from core.events import ChunkRef, Manifest
from core.layout import ObjectLayout
from core.settings import Settings
from dataflows.ingest.chunking import composite_sha256
from dataflows.ingest.store import ChunkStore, UploadLost, VerificationError
from dataflows.source_index import SourceIndex

__all__ = ["MemoryChunkStore", "MemorySourceIndex", "NoObjectStore"]


class NoObjectStore:
    """Stands where a store's S3 client would: any use fails at once, naming it. An in-process
    test that reached the real object store would depend on whether a stack runs (and on what
    other tests left in its default bucket)."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"an in-process test reached for the object store: client.{name}")


class MemorySourceIndex(SourceIndex):
    """The dedup index over a :class:`MemoryChunkStore`'s objects (same rules, no HTTP)."""

    def __init__(self, store: MemoryChunkStore) -> None:
        super().__init__(store.client, store.bucket, store.layout)
        self.store = store

    def _size_of(self, key: str) -> int | None:
        data = self.store.objects.get(key)
        return None if data is None else len(data)

    def _read_entry(self, entry_key: str) -> bytes | None:
        return self.store.objects.get(entry_key)

    def _write_entry(self, entry_key: str, body: bytes) -> None:
        self.store.objects[entry_key] = body

    def _delete_entry(self, entry_key: str) -> None:
        self.store.objects.pop(entry_key, None)


class MemoryChunkStore(ChunkStore):
    """A :class:`ChunkStore` keeping objects and multipart uploads in dicts."""

    def __init__(self, settings: Settings, workdir: Path) -> None:  # no super(): no HTTP pool
        # only an upload's bytes are read through the client, and these tests watch files
        self.client = cast(Minio, NoObjectStore())
        self.bucket = settings.storage.bucket
        self.layout = ObjectLayout(settings.storage)
        self.workdir = workdir
        self.objects: dict[str, bytes] = {}
        self.uploads: dict[str, dict[int, bytes]] = {}
        self.abandoned: list[str] = []
        self.puts = 0  # parts sent
        self._lock = threading.Lock()  # puts and copies come from the flow's I/O threads

    def begin_source(self, video_id: str) -> str:
        upload = uuid.uuid4().hex
        with self._lock:
            self.uploads[upload] = {}
        return upload

    def put_part(self, video_id: str, upload_id: str, chunk: ChunkRef, data: bytes) -> str:
        if hashlib.sha256(data).hexdigest() != chunk.sha256:  # what the store's checksum does
            raise VerificationError(f"part {chunk.index + 1} does not match its checksum")
        with self._lock:
            parts = self.uploads.get(upload_id)
            if parts is None:
                raise UploadLost(f"the multipart upload of {video_id} is gone")
            parts[chunk.index + 1] = bytes(data)
            self.puts += 1
        return hashlib.md5(data, usedforsecurity=False).hexdigest()

    def finish_source(
        self, video_id: str, upload_id: str, chunks: list[ChunkRef], etags: list[str]
    ) -> tuple[str, bool]:
        key = self.layout.source(video_id)
        with self._lock:
            parts = self.uploads.pop(upload_id)
            assert sorted(parts) == list(range(1, len(etags) + 1)), "parts missing or extra"
            assert len(chunks) == len(etags)
            self.objects[key] = b"".join(parts[n] for n in sorted(parts))
        return key, True

    def abandon_source(self, video_id: str, upload_id: str) -> None:
        with self._lock:
            self.uploads.pop(upload_id, None)
            self.abandoned.append(upload_id)

    def _check(self, key: str, chunks: list[ChunkRef]) -> bytes:
        data = self.objects[key]
        expected = sum(c.size for c in chunks)
        if len(data) != expected:
            raise VerificationError(f"{key} has {len(data)} bytes, its chunks {expected}")
        for chunk in chunks:
            part = data[chunk.offset : chunk.offset + chunk.size]
            if hashlib.sha256(part).hexdigest() != chunk.sha256:
                raise VerificationError(f"{key}: chunk {chunk.index} does not match its digest")
        return data

    def verify(self, key: str, chunks: list[ChunkRef]) -> str:
        return hashlib.sha256(self._check(key, chunks)).hexdigest()

    def write_manifest(
        self, video_id: str, key: str, chunks: list[ChunkRef], sha256: str
    ) -> Manifest:
        manifest = Manifest(
            video_id=video_id,
            size=sum(c.size for c in chunks),
            chunks=chunks,
            composite_sha256=composite_sha256(c.sha256 for c in chunks),
            sha256=sha256,
            source_key=key,
        )
        return manifest

    def source_index(self) -> SourceIndex:
        return MemorySourceIndex(self)

    def remove(self, key: str) -> None:
        with self._lock:
            self.objects.pop(key, None)

    def presigned(self, key: str, minutes: int = 60) -> str:
        """A local copy of the object: what FFmpeg reads instead of a URL."""
        path = self.workdir / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(self.objects[key])
        return str(path)

    def keys_of(self, video_id: str) -> set[str]:
        """Every object key naming the video (its source; the manifest is not kept here)."""
        return {key for key in self.objects if f"/{video_id}/" in key}
