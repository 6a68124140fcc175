"""S3 multipart uploads whose parts a browser PUTs itself, through presigned URLs.

The object store keeps which parts arrived (ListParts), so that, not anything a client says,
is what a resumed upload continues from and what completing composes. minio-py exposes the
raw S3 calls as underscore methods; this module is the one place that touches them.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import quote
from xml.etree import ElementTree

import urllib3
from minio import Minio
from minio.datatypes import Part
from minio.error import S3Error

__all__ = [
    "MAX_PARTS",
    "MIN_PART_SIZE",
    "ChecksummedPart",
    "StoredPart",
    "abort",
    "checksum_b64",
    "complete",
    "complete_checksummed",
    "copy_part",
    "create",
    "list_stored",
    "open_uploads",
    "part_size_for",
    "presign_part",
    "put_part",
]

MIN_PART_SIZE = 5 * 1024 * 1024  # S3: every part but the last is at least 5 MiB
MAX_PARTS = 10_000  # S3: part numbers run 1..10000
MiB = 1024 * 1024
CHECKSUM_ALGORITHM = "x-amz-checksum-algorithm"
CHECKSUM_SHA256 = "x-amz-checksum-sha256"
_S3_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"
# printable ASCII but the escape character itself and space (headers trim it)
_METADATA_SAFE = "".join(chr(c) for c in range(33, 127) if chr(c) != "%")


@dataclass(frozen=True)
class ChecksummedPart:
    """A part sent with its SHA-256 (hex), as CompleteMultipartUpload must list it."""

    number: int
    etag: str
    sha256: str


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


def create(
    client: Minio,
    bucket: str,
    key: str,
    metadata: Mapping[str, str] | None = None,
    *,
    checksummed: bool = False,
) -> str:
    """Start a multipart upload; returns the store's upload id.

    ``metadata`` becomes the object's user metadata (``x-amz-meta-<name>``); S3 carries it in
    headers, which are ASCII, so values are percent-encoded UTF-8 (``quote``; plain ASCII
    names read as themselves, ``unquote`` gives back any other). ``checksummed`` declares
    SHA-256 part checksums (``x-amz-checksum-algorithm``): every part must then carry its own,
    which the store checks on arrival (:func:`put_part`).
    """
    headers: dict[str, str | list[str] | tuple[str]] = {"Content-Type": "application/octet-stream"}
    if checksummed:
        headers[CHECKSUM_ALGORITHM] = "SHA256"
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


def open_uploads(client: Minio, bucket: str, key: str) -> list[str]:
    """The ids of the multipart uploads open on exactly ``key`` (following the pages)."""
    ids: list[str] = []
    key_marker: str | None = None
    id_marker: str | None = None
    while True:
        page = client._list_multipart_uploads(
            bucket, prefix=key, key_marker=key_marker, upload_id_marker=id_marker
        )
        ids.extend(u.upload_id for u in page.uploads if u.object_name == key and u.upload_id)
        if not page.is_truncated:
            return ids
        key_marker, id_marker = page.next_key_marker, page.next_upload_id_marker


def complete(client: Minio, bucket: str, key: str, upload_id: str, parts: list[StoredPart]) -> None:
    """Compose the object from ``parts`` (server-side; no bytes pass through here)."""
    client._complete_multipart_upload(
        bucket, key, upload_id, [Part(p.number, p.etag) for p in parts]
    )


def abort(client: Minio, bucket: str, key: str, upload_id: str) -> None:
    """Drop the upload and every part stored for it."""
    client._abort_multipart_upload(bucket, key, upload_id)


def checksum_b64(sha256_hex: str) -> str:
    """S3's form of a SHA-256 checksum: base64 of the raw digest."""
    return base64.b64encode(bytes.fromhex(sha256_hex)).decode("ascii")


def put_part(
    client: Minio,
    http: urllib3.PoolManager,
    target: tuple[str, str, str],
    number: int,
    data: bytes,
    sha256_hex: str,
) -> str:
    """PUT ``data`` as part ``number`` of the upload ``target`` (bucket, key, upload id) with its
    SHA-256 as ``x-amz-checksum-sha256``; returns its ETag.

    The store hashes the body on arrival and refuses it (``XAmzContentChecksumMismatch``) unless
    it matches. The request goes through a presigned URL: a signed request over plain HTTP
    makes the client hash the body once more for its signature (the payload is unsigned in a
    presigned request; the checksum header is what guards it).
    """
    bucket, key, upload_id = target
    url = presign_part(client, bucket, key, upload_id, number, timedelta(minutes=15))
    response = http.request(
        "PUT", url, body=data, headers={CHECKSUM_SHA256: checksum_b64(sha256_hex)},
        preload_content=True,
    )  # fmt: skip
    if response.status != 200:
        raise _s3_error(response, key)
    etag = response.headers.get("ETag", "")
    return str(etag).strip('"')


def complete_checksummed(
    client: Minio, bucket: str, key: str, upload_id: str, parts: list[ChecksummedPart]
) -> str:
    """Complete an upload whose parts carry SHA-256 checksums (each listed with its
    ``ChecksumSHA256``); returns the store's composite checksum (``base64-N``, "" if it gave
    none). No bytes pass through here."""
    root = ElementTree.Element("CompleteMultipartUpload")
    for part in parts:
        tag = ElementTree.SubElement(root, "Part")
        ElementTree.SubElement(tag, "PartNumber").text = str(part.number)
        ElementTree.SubElement(tag, "ETag").text = f'"{part.etag}"'
        ElementTree.SubElement(tag, "ChecksumSHA256").text = checksum_b64(part.sha256)
    body = ElementTree.tostring(root)
    headers: dict[str, str | list[str] | tuple[str]] = {"Content-Type": "application/xml"}
    response = client._execute(
        "POST", bucket, key, body=body, headers=headers, query_params={"uploadId": upload_id}
    )
    answer = ElementTree.fromstring(response.data)
    if answer.tag.endswith("Error"):  # S3 may answer 200 with an error body
        raise _s3_error(response, key)
    return answer.findtext(f"{_S3_NS}ChecksumSHA256") or answer.findtext("ChecksumSHA256") or ""


def _s3_error(response: urllib3.BaseHTTPResponse, key: str) -> S3Error:
    """The S3 error a refused raw request answered (its code and message, never its URL)."""
    code, message = f"HTTP{response.status}", ""
    try:
        answer = ElementTree.fromstring(response.data)
        code = answer.findtext("Code") or answer.findtext(f"{_S3_NS}Code") or code
        message = answer.findtext("Message") or answer.findtext(f"{_S3_NS}Message") or ""
    except ElementTree.ParseError:
        pass
    return S3Error(response, code, message, key, None, None)
