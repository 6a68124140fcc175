"""Reading byte ranges of a source, whether a local file or an uploaded object."""

from __future__ import annotations

from pathlib import Path

from minio import Minio

from dataflows.ingest.state import StreamState

__all__ = ["SourceVanished", "read_range"]


class SourceVanished(RuntimeError):
    """The file or object is gone, or shorter than it said."""


def read_range(state: StreamState, client: Minio, offset: int, length: int) -> bytes:
    """Exactly ``length`` bytes at ``offset`` of the stream's source."""
    if state.origin == "upload":
        response = client.get_object(state.bucket, state.location, offset=offset, length=length)
        try:
            data = response.read()
        finally:
            response.close()
            response.release_conn()
    else:
        try:
            with Path(state.location).open("rb") as handle:
                handle.seek(offset)
                data = handle.read(length)
        except FileNotFoundError:
            raise SourceVanished(f"{state.location} disappeared while being read") from None
    if len(data) != length:
        raise SourceVanished(
            f"{state.location} has {offset + len(data)} bytes, expected at least {offset + length}"
        )
    return data
