"""What ingest writes to object storage: chunks, the composed source, its manifest."""

from __future__ import annotations

import hashlib
import io
from datetime import timedelta

import msgspec
from minio import Minio
from minio.commonconfig import ComposeSource, CopySource

from connectors.storage import object_exists
from dataflows.ingest.chunking import composite_sha256
from vidflow.events import ChunkRef, Manifest
from vidflow.layout import ObjectLayout

__all__ = ["ChunkStore", "VerificationError"]

READ_BLOCK = 4 * 1024 * 1024
COMPOSE_MAX_PARTS = 10_000


class VerificationError(RuntimeError):
    """The composed source does not match the chunks it was made of."""


class ChunkStore:
    """Content-addressed chunks and composed sources in one bucket."""

    def __init__(self, client: Minio, bucket: str, layout: ObjectLayout) -> None:
        self.client = client
        self.bucket = bucket
        self.layout = layout

    def put_chunk(self, data: bytes) -> tuple[str, bool]:
        """Store ``data`` under its SHA-256 unless it is already there; (digest, deduplicated)."""
        digest = hashlib.sha256(data).hexdigest()
        key = self.layout.chunk(digest)
        if object_exists(self.client, self.bucket, key):
            return digest, True
        self.client.put_object(self.bucket, key, io.BytesIO(data), len(data))
        return digest, False

    def compose(self, video_id: str, chunks: list[ChunkRef]) -> str:
        """Server-side compose of the chunks into the source object; returns its key."""
        key = self.layout.source(video_id)
        if len(chunks) == 1:
            self.client.copy_object(
                self.bucket, key, CopySource(self.bucket, self.layout.chunk(chunks[0].sha256))
            )
        elif len(chunks) <= COMPOSE_MAX_PARTS:
            sources = [ComposeSource(self.bucket, self.layout.chunk(c.sha256)) for c in chunks]
            self.client.compose_object(self.bucket, key, sources)
        else:
            raise VerificationError(
                f"{len(chunks)} chunks exceed the compose limit; raise chunk size"
            )
        return key

    def verify(self, key: str, chunks: list[ChunkRef]) -> str:
        """Read the composed object once: every chunk's digest must match; returns its SHA-256."""
        whole = hashlib.sha256()
        response = self.client.get_object(self.bucket, key)
        try:
            for chunk in chunks:
                part = hashlib.sha256()
                remaining = chunk.size
                while remaining:
                    block = response.read(min(READ_BLOCK, remaining))
                    if not block:
                        raise VerificationError(f"{key} ends before chunk {chunk.index}")
                    part.update(block)
                    whole.update(block)
                    remaining -= len(block)
                if part.hexdigest() != chunk.sha256:
                    raise VerificationError(f"{key}: chunk {chunk.index} does not match its digest")
            if response.read(1):
                raise VerificationError(f"{key} is longer than its chunks")
        finally:
            response.close()
            response.release_conn()
        return whole.hexdigest()

    def write_manifest(
        self, video_id: str, key: str, chunks: list[ChunkRef], sha256: str
    ) -> Manifest:
        """Write ``manifest.json`` beside the source (same content on every run)."""
        manifest = Manifest(
            video_id=video_id,
            size=sum(c.size for c in chunks),
            chunks=chunks,
            composite_sha256=composite_sha256(c.sha256 for c in chunks),
            sha256=sha256,
            source_key=key,
        )
        body = msgspec.json.format(msgspec.json.encode(manifest), indent=2)
        self.client.put_object(
            self.bucket, self.layout.manifest(video_id), io.BytesIO(body), len(body),
            content_type="application/json",
        )  # fmt: skip
        return manifest

    def presigned(self, key: str, minutes: int = 60) -> str:
        """A URL FFmpeg can read the object from."""
        return self.client.presigned_get_object(
            self.bucket, key, expires=timedelta(minutes=minutes)
        )
