"""The whole-file dedup index: ``sources/_by-sha256/{sha256}`` names the key holding those bytes.

A hint, never the record (the manifests are): an entry counts only while the key it names is
one the layout derives and still holds bytes of the size expected. Ingest reads and writes it
(``dataflows/ingest/dedup.py``); a delete (``dataflows/transcode/purge.py``) drops the entry of
the bytes it may remove *before* it looks whether another manifest still names them, so an
adoption racing the delete sees the entry gone and keeps its own bytes.
"""

from __future__ import annotations

import io

from minio import Minio
from minio.error import S3Error

from connectors.storage import MISSING_CODES, read_object
from core.layout import ObjectLayout

__all__ = ["SourceIndex"]

_ENTRY_MAX = 2048  # an entry is one key; a larger body is not ours


class SourceIndex:
    """The dedup index of one bucket."""

    def __init__(self, client: Minio, bucket: str, layout: ObjectLayout) -> None:
        self.client = client
        self.bucket = bucket
        self.layout = layout

    def existing_source_for(self, sha256: str, size: int | None = None) -> str | None:
        """The key of stored bytes whose SHA-256 is ``sha256`` (and size ``size`` when given),
        or None. A stale entry (its bytes gone, another size, a key the layout does not derive)
        reads as None."""
        key = self.entry(sha256)
        if key is None or not self.layout.is_source_key(key):
            return None
        stored = self._size_of(key)
        if stored is None or (size is not None and stored != size):
            return None
        return key

    def remember(self, sha256: str, key: str) -> None:
        """Record that ``key`` holds the bytes of ``sha256`` (a later identical file uses it)."""
        self._write_entry(self.layout.by_sha256(sha256), key.encode())

    def forget(self, sha256: str) -> None:
        """Drop the entry of ``sha256`` (a delete does it before deciding about the bytes)."""
        self._delete_entry(self.layout.by_sha256(sha256))

    def still_holds(self, sha256: str, key: str, size: int) -> bool:
        """Whether the entry still names ``key`` and the bytes are still there: asked after a
        manifest was written naming them, so a delete racing the adoption is seen."""
        return self.existing_source_for(sha256, size) == key

    def entry(self, sha256: str) -> str | None:
        """The key the entry of ``sha256`` names, unchecked (None when there is none)."""
        body = self._read_entry(self.layout.by_sha256(sha256))
        if body is None or len(body) > _ENTRY_MAX:
            return None
        try:
            return body.decode()
        except UnicodeDecodeError:
            return None

    # The store under the index: an in-memory store for the flows' in-process tests overrides
    # these four, the rules above stay the same.

    def _size_of(self, key: str) -> int | None:
        """The size of the object ``key``, None when it is gone."""
        try:
            return int(self.client.stat_object(self.bucket, key).size or 0)
        except S3Error as exc:
            if exc.code in MISSING_CODES:
                return None
            raise

    def _read_entry(self, entry_key: str) -> bytes | None:
        return read_object(self.client, self.bucket, entry_key, _ENTRY_MAX + 1)

    def _write_entry(self, entry_key: str, body: bytes) -> None:
        self.client.put_object(
            self.bucket, entry_key, io.BytesIO(body), len(body), content_type="text/plain"
        )

    def _delete_entry(self, entry_key: str) -> None:
        self.client.remove_object(self.bucket, entry_key)
