"""S3 multipart uploads whose parts a browser PUTs itself, through presigned URLs.

The object store keeps which parts arrived (ListParts), so that, not anything a client says,
is what a resumed upload continues from and what completing composes. minio-py exposes the
raw S3 calls as underscore methods; this module is the one place that touches them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import quote

from minio import Minio
from minio.datatypes import Part

__all__ = [
    "MAX_PARTS",
    "MIN_PART_SIZE",
    "StoredPart",
    "abort",
    "complete",
    "copy_part",
    "create",
    "list_stored",
    "part_size_for",
    "presign_part",
]

MIN_PART_SIZE = 5 * 1024 * 1024  # S3: every part but the last is at least 5 MiB
MAX_PARTS = 10_000  # S3: part numbers run 1..10000
MiB = 1024 * 1024
# printable ASCII but the escape character itself and space (headers trim it)
_METADATA_SAFE = "".join(chr(c) for c in range(33, 127) if chr(c) != "%")


@dataclass(frozen=True)
class StoredPart:
    """A part the object store holds."""

    number: int
    size: int
    etag: str


def part_size_for(size: int, minimum: int = MIN_PART_SIZE) -> int:
    """The smallest whole-MiB part size (at least ``minimum``) that fits ``size`` in the part
    limit."""
    needed = -(-size // MAX_PARTS)
    return max(minimum, -(-needed // MiB) * MiB)


def create(client: Minio, bucket: str, key: str, metadata: Mapping[str, str] | None = None) -> str:
    """Start a multipart upload; returns the store's upload id.

    ``metadata`` becomes the object's user metadata (``x-amz-meta-<name>``); S3 carries it in
    headers, which are ASCII, so values are percent-encoded UTF-8 (``quote``; plain ASCII
    names read as themselves, ``unquote`` gives back any other).
    """
    headers: dict[str, str | list[str] | tuple[str]] = {"Content-Type": "application/octet-stream"}
    for name, value in (metadata or {}).items():
        headers[f"x-amz-meta-{name}"] = quote(value, safe=_METADATA_SAFE)
    return client._create_multipart_upload(bucket, key, headers)


def presign_part(
    client: Minio, bucket: str, key: str, upload_id: str, number: int, expires: timedelta
) -> str:
    """A URL that lets its holder PUT one part (signed locally: no request to the store)."""
    return client.get_presigned_url(
        "PUT",
        bucket,
        key,
        expires=expires,
        extra_query_params={"uploadId": upload_id, "partNumber": str(number)},
    )


def copy_part(
    client: Minio, bucket: str, key: str, upload_id: str, number: int, source_key: str, size: int
) -> StoredPart:
    """Make part ``number`` a server-side copy of ``source_key`` (same bucket; no bytes here)."""
    etag, _ = client._upload_part_copy(
        bucket, key, upload_id, number, {"x-amz-copy-source": quote(f"/{bucket}/{source_key}")}
    )
    return StoredPart(number, size, etag)


def list_stored(client: Minio, bucket: str, key: str, upload_id: str) -> list[StoredPart]:
    """Every part stored so far, in part-number order (following ListParts' pages)."""
    parts: list[StoredPart] = []
    marker: str | None = None
    while True:
        page = client._list_parts(bucket, key, upload_id, part_number_marker=marker)
        parts.extend(StoredPart(p.part_number, p.size or 0, p.etag) for p in page.parts)
        if not page.is_truncated or not page.next_part_number_marker:
            return parts
        marker = page.next_part_number_marker


def complete(client: Minio, bucket: str, key: str, upload_id: str, parts: list[StoredPart]) -> None:
    """Compose the object from ``parts`` (server-side; no bytes pass through here)."""
    client._complete_multipart_upload(
        bucket, key, upload_id, [Part(p.number, p.etag) for p in parts]
    )


def abort(client: Minio, bucket: str, key: str, upload_id: str) -> None:
    """Drop the upload and every part stored for it."""
    client._abort_multipart_upload(bucket, key, upload_id)
