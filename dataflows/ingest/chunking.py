"""Chunk planning and checksums: pure functions, no I/O."""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterable

__all__ = ["composite_matches", "composite_sha256", "plan_chunks"]


def plan_chunks(offset: int, size: int, chunk_size: int, *, final: bool) -> list[tuple[int, int]]:
    """The ``(offset, length)`` ranges to cut from ``offset`` given ``size`` bytes exist.

    Only whole chunks are cut while a file may still grow; the partial tail is cut once the
    stream is ``final``, so every chunk but the last has exactly ``chunk_size`` bytes (which is
    what multipart parts need: at least 5 MiB but the last).
    """
    if chunk_size <= 0:
        raise ValueError("chunk_size must be positive")
    ranges: list[tuple[int, int]] = []
    position = offset
    while size - position >= chunk_size:
        ranges.append((position, chunk_size))
        position += chunk_size
    if final and size > position:
        ranges.append((position, size - position))
    return ranges


def composite_sha256(digests: Iterable[str]) -> str:
    """The S3 multipart convention over chunk digests: ``sha256(d1 || d2 || ...)-N``."""
    joined = hashlib.sha256()
    count = 0
    for digest in digests:
        joined.update(bytes.fromhex(digest))
        count += 1
    return f"{joined.hexdigest()}-{count}"


def composite_matches(stored: str, expected: str) -> bool:
    """Whether the store's composite checksum (S3's ``base64-N``) is ``expected`` (``hex-N``)."""
    digest, _, count = stored.partition("-")
    want_hex, _, want_count = expected.partition("-")
    try:
        raw = base64.b64decode(digest, validate=True)
    except (binascii.Error, ValueError):
        return False
    return raw.hex() == want_hex and count == want_count
