"""A stored object's body as the async stream a response sends, shared by the file proxy and
the downloads (controllers are peers: neither imports the other)."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator, Callable

from urllib3 import BaseHTTPResponse

__all__ = ["object_stream"]

PIECE = 256 * 1024


def object_stream(response: BaseHTTPResponse) -> AsyncIterator[bytes]:
    """The body of ``response`` read off the event loop, its connection given back to the pool
    once, at the end or when the stream is dropped: a client gone before the first byte means
    the generator never runs (nor its ``finally``)."""
    release = _releaser(response)

    async def body() -> AsyncIterator[bytes]:
        try:
            while piece := await asyncio.to_thread(response.read, PIECE):
                yield piece
        finally:
            release()

    stream = body()
    weakref.finalize(stream, release)
    return stream


def _releaser(response: BaseHTTPResponse) -> Callable[[], None]:
    """Close ``response`` and give its connection back to the pool, once."""
    done: list[bool] = []

    def release() -> None:
        if not done:
            done.append(True)
            response.close()
            response.release_conn()

    return release
