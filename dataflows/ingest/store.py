"""What ingest writes to object storage: the source, part by part as it is read, and its manifest.

A stream's chunks are the parts of one multipart upload to the video's source key: every byte is
stored once, each part checked by the store on arrival against the SHA-256 sent with it
(``x-amz-checksum-sha256``), and completing composes nothing (the store only links its parts).
"""

from __future__ import annotations

import hashlib
import io
from datetime import timedelta

import msgspec
import urllib3
from minio import Minio
from minio.error import S3Error

from connectors import multipart
from connectors.storage import MISSING_CODES
from core.events import ChunkRef, Manifest
from core.layout import ObjectLayout
from dataflows.ingest.chunking import composite_matches, composite_sha256
from dataflows.source_index import SourceIndex

__all__ = ["ChunkStore", "UploadLost", "VerificationError"]

READ_BLOCK = 4 * 1024 * 1024


class VerificationError(RuntimeError):
    """The stored source does not match the chunks it was made of."""


class UploadLost(RuntimeError):
    """The store no longer knows the stream's multipart upload (expired as stale, aborted, or
    completed before a crash the snapshot did not see) and holds no source made of the stream's
    chunks: its bytes must be sent again."""


class ChunkStore:
    """Sources written part by part, their manifests, and chunks fetched back by range."""

    def __init__(self, client: Minio, bucket: str, layout: ObjectLayout) -> None:
        self.client = client
        self.bucket = bucket
        self.layout = layout
        self._http = urllib3.PoolManager(
            maxsize=16,
            timeout=urllib3.Timeout(connect=5.0, read=120.0),
            retries=urllib3.Retry(total=5, backoff_factor=0.5, status_forcelist=[500, 502, 503]),
        )

    def begin_source(self, video_id: str) -> str:
        """Start the video's source as a multipart upload with SHA-256 part checksums."""
        return multipart.create(
            self.client, self.bucket, self.layout.source(video_id), checksummed=True
        )

    def put_part(self, video_id: str, upload_id: str, chunk: ChunkRef, data: bytes) -> str:
        """Send ``data`` (the bytes of ``chunk``, whose digest is already known) as part
        ``index + 1`` of the source; its ETag. The same part sent again (a resumed stream)
        overwrites itself. Raises :class:`UploadLost` when the store no longer knows the upload.
        """
        target = (self.bucket, self.layout.source(video_id), upload_id)
        try:
            return multipart.put_part(
                self.client, self._http, target, chunk.index + 1, data, chunk.sha256
            )
        except S3Error as exc:
            if exc.code == "NoSuchUpload":
                raise UploadLost(f"the multipart upload of {video_id} is gone") from None
            raise

    def finish_source(
        self, video_id: str, upload_id: str, chunks: list[ChunkRef], etags: list[str]
    ) -> tuple[str, bool]:
        """Complete the source from its parts, each listed with its checksum: its key, and
        whether the store vouched for its parts (False: a source found whole, to read back).

        The store's composite checksum must be the one of the chunks' digests (the S3
        convention: sha256 of the raw part digests, ``-N``): every part is the chunk the stream
        read, in its place. Raises :class:`UploadLost` if the upload is gone and no such source
        is there (:meth:`recover_source`)."""
        key = self.layout.source(video_id)
        parts = [
            multipart.ChecksummedPart(c.index + 1, etag, c.sha256)
            for c, etag in zip(chunks, etags, strict=True)
        ]
        try:
            stored = multipart.complete_checksummed(self.client, self.bucket, key, upload_id, parts)
        except S3Error as exc:
            if exc.code != "NoSuchUpload":
                raise
            return self.recover_source(video_id, chunks), False
        expected = composite_sha256(c.sha256 for c in chunks)
        if not composite_matches(stored, expected):
            raise VerificationError(f"{key}: the store's checksum {stored!r} is not {expected}")
        self.sweep_uploads(video_id)
        return key, True

    def sweep_uploads(self, video_id: str) -> None:
        """Abort every multipart upload still open on the video's source: one stream writes it,
        so any other is an orphan (begun by a process killed before its snapshot named it)."""
        key = self.layout.source(video_id)
        for upload_id in multipart.open_uploads(self.client, self.bucket, key):
            multipart.abort(self.client, self.bucket, key, upload_id)

    def recover_source(self, video_id: str, chunks: list[ChunkRef]) -> str:
        """The upload is gone: a source of the chunks' size completed before a crash is taken
        (completion then reads it back: :meth:`verify`); otherwise :class:`UploadLost`."""
        key = self.layout.source(video_id)
        try:
            size = self.client.stat_object(self.bucket, key).size
        except S3Error as exc:
            if exc.code not in MISSING_CODES:
                raise
            size = None
        if size != sum(c.size for c in chunks):
            raise UploadLost(f"the multipart upload of {video_id} is gone")
        return key

    def abandon_source(self, video_id: str, upload_id: str) -> None:
        """Drop an unfinished multipart source (its parts too); one already gone is fine."""
        try:
            multipart.abort(self.client, self.bucket, self.layout.source(video_id), upload_id)
        except S3Error as exc:
            if exc.code != "NoSuchUpload":
                raise

    def fetch_chunk(self, key: str, chunk: ChunkRef) -> bytes:
        """Chunk ``chunk`` of the object ``key``, by a ranged GET, checked against its digest."""
        response = self.client.get_object(self.bucket, key, offset=chunk.offset, length=chunk.size)
        try:
            data = response.read()
        finally:
            response.close()
            response.release_conn()
        if len(data) != chunk.size or hashlib.sha256(data).hexdigest() != chunk.sha256:
            raise VerificationError(f"{key}: chunk {chunk.index} does not match its digest")
        return data

    def verify(self, key: str, chunks: list[ChunkRef]) -> str:
        """Read the source once: every chunk's digest must match; returns its SHA-256.

        Not the normal path: for a stream resumed from a snapshot (whose running SHA-256 of the
        file was not snapshotted: hash objects do not pickle)."""
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

    def source_index(self) -> SourceIndex:
        """The bucket's whole-file dedup index (``dataflows/source_index.py``)."""
        return SourceIndex(self.client, self.bucket, self.layout)

    def remove(self, key: str) -> None:
        """Remove the object ``key`` (bytes found already stored under another key)."""
        self.client.remove_object(self.bucket, key)

    def presigned(self, key: str, minutes: int = 60) -> str:
        """A URL FFmpeg can read the object from."""
        return self.client.presigned_get_object(
            self.bucket, key, expires=timedelta(minutes=minutes)
        )
