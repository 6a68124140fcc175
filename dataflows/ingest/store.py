"""What ingest writes to object storage: chunks, the composed source, its manifest."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable, Iterable, Iterator
from datetime import timedelta

import msgspec
import urllib3
from minio import Minio
from minio.commonconfig import ComposeSource, CopySource
from minio.error import S3Error

from connectors import multipart
from connectors.storage import object_exists
from core.events import ChunkRef, Manifest
from core.layout import ObjectLayout
from dataflows.ingest.chunking import composite_sha256

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
        self._http = urllib3.PoolManager(
            maxsize=16,
            timeout=urllib3.Timeout(connect=5.0, read=120.0),
            retries=urllib3.Retry(total=5, backoff_factor=0.5, status_forcelist=[500, 502, 503]),
        )

    def put_chunk(self, data: bytes) -> tuple[str, bool]:
        """Store ``data`` under its SHA-256 unless it is already there; (digest, deduplicated).

        The put goes through a presigned URL: a signed request over plain HTTP makes the client
        hash the body once more for the signature, a third SHA-256 of every byte on a path whose
        integrity the read-back of the composed source checks end to end anyway.
        """
        digest = hashlib.sha256(data).hexdigest()
        key = self.layout.chunk(digest)
        if object_exists(self.client, self.bucket, key):
            return digest, True
        url = self.client.presigned_put_object(self.bucket, key, expires=timedelta(minutes=15))
        response = self._http.request("PUT", url, body=data, preload_content=True)
        if response.status != 200:
            raise urllib3.exceptions.HTTPError(
                f"PUT {key} answered {response.status}: {response.data[:300]!r}"
            )
        return digest, False

    def begin_source(self, video_id: str) -> str:
        """Start the source object as a multipart upload whose parts are copies of chunks, so
        composing happens while chunks arrive; returns the upload id."""
        return multipart.create(self.client, self.bucket, self.layout.source(video_id))

    def copy_chunk_into_source(self, video_id: str, upload_id: str, chunk: ChunkRef) -> str:
        """Server-side copy of a stored chunk as part ``index + 1`` of the source; its ETag.

        ``""`` when the store no longer knows the upload (completed before a crash the last
        snapshot did not see, or expired as stale): the source is then composed in one go at
        the end, from the chunks."""
        try:
            part = multipart.copy_part(
                self.client, self.bucket, self.layout.source(video_id), upload_id,
                chunk.index + 1, self.layout.chunk(chunk.sha256), chunk.size,
            )  # fmt: skip
        except S3Error as exc:
            if exc.code != "NoSuchUpload":
                raise
            return ""
        return part.etag

    def finish_source(self, video_id: str, upload_id: str, etags: list[str]) -> str:
        """Complete the multipart source from its copied parts; returns its key."""
        key = self.layout.source(video_id)
        parts = [multipart.StoredPart(n, 0, etag) for n, etag in enumerate(etags, start=1)]
        multipart.complete(self.client, self.bucket, key, upload_id, parts)
        return key

    def abandon_source(self, video_id: str, upload_id: str) -> None:
        """Drop an unfinished multipart source (its parts too)."""
        multipart.abort(self.client, self.bucket, self.layout.source(video_id), upload_id)

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

    def verify_chunks(
        self,
        key: str,
        chunks: list[ChunkRef],
        parallel_map: Callable[[Callable[[ChunkRef], bool], Iterable[ChunkRef]], Iterator[bool]],
    ) -> None:
        """Every byte of the composed object checked against its chunk's digest, ranges read and
        hashed in parallel (``parallel_map`` is an executor's ``map``)."""
        stat = self.client.stat_object(self.bucket, key)
        expected = sum(c.size for c in chunks)
        if stat.size != expected:
            raise VerificationError(f"{key} has {stat.size} bytes, its chunks {expected}")

        def matches(chunk: ChunkRef) -> bool:
            digest = hashlib.sha256()
            response = self.client.get_object(
                self.bucket, key, offset=chunk.offset, length=chunk.size
            )
            try:
                for block in response.stream(READ_BLOCK):
                    digest.update(block)
            finally:
                response.close()
                response.release_conn()
            return digest.hexdigest() == chunk.sha256

        for chunk, ok in zip(chunks, parallel_map(matches, chunks), strict=True):
            if not ok:
                raise VerificationError(f"{key}: chunk {chunk.index} does not match its digest")

    def verify(self, key: str, chunks: list[ChunkRef]) -> str:
        """Read the composed object once: every chunk's digest must match; returns its SHA-256.

        The slow path, for a stream resumed from a snapshot (whose running SHA-256 of the file
        was not snapshotted: hash objects do not pickle)."""
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
