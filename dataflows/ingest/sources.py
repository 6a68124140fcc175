"""Reading a stream's bytes: a local file or an uploaded object."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from minio import Minio
from minio.error import S3Error

from dataflows.ingest.files import RefusedFile, open_regular, read_exactly
from dataflows.ingest.state import StreamState

__all__ = ["GONE_CODES", "SourceVanished", "read_range"]

# What the store answers for an object that is not (or no longer) there or may not be read:
# none of these heals by waiting, so the stream fails with the reason instead of retrying.
GONE_CODES = frozenset(
    {"NoSuchKey", "NoSuchBucket", "AccessDenied", "InvalidRange", "NoSuchVersion"}
)


class SourceVanished(RuntimeError):
    """The file or object is gone, unreadable, or shorter than it said."""


def read_range(
    state: StreamState, client: Minio, offset: int, length: int, *, roots: Sequence[Path]
) -> bytes:
    """Exactly ``length`` bytes at ``offset`` of the stream's source (a local one must be a
    regular file under the resolved ``roots``)."""
    if state.origin == "upload":
        try:
            response = client.get_object(state.bucket, state.location, offset=offset, length=length)
        except S3Error as exc:
            if exc.code not in GONE_CODES:
                raise
            raise SourceVanished(
                f"the uploaded object {state.location} cannot be read: {exc.code} ({exc.message})"
            ) from None
        try:
            data = response.read()
        finally:
            response.close()
            response.release_conn()
    else:
        # a local file that cannot be read (gone, not a regular file, outside the roots, no
        # permission, replaced) is not a storage outage: waiting does not heal it, so it fails
        # the stream with the reason; it is opened as untrusted input on every read
        try:
            with open_regular(state.location, roots, inode=state.inode) as (fd, _):
                data = read_exactly(fd, offset, length)
        except FileNotFoundError:
            raise SourceVanished(f"{state.filename} disappeared while being read") from None
        except RefusedFile as exc:
            raise SourceVanished(f"{state.filename} cannot be read: {exc}") from None
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise SourceVanished(f"{state.filename} cannot be read: {reason}") from None
    if len(data) != length:
        name = state.filename or "the source"
        raise SourceVanished(
            f"{name} has {offset + len(data)} bytes, expected at least {offset + length}"
        )
    return data
