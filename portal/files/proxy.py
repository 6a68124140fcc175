"""``/videos/{id}/files/{key}``: a video's playable objects streamed from the store, for the
player; MP4 downloads are short-lived presigned links instead (see the video page)."""

from __future__ import annotations

import asyncio
import re
import weakref
from collections.abc import AsyncIterator, Callable
from typing import Any

from litestar import Request, get
from litestar.params import FromPath
from litestar.response import Stream
from urllib3 import BaseHTTPResponse

from portal.deps import Db, Layout, SettingsDep, Storage
from portal.errors import NotFound
from portal.projection import is_served_object
from portal.videos.access import visible_video

__all__ = ["video_file"]


@get("/videos/{video_id:str}/files/{key:path}", include_in_schema=False)
async def video_file(
    request: Request[Any, Any, Any],
    db: Db,
    settings: SettingsDep,
    storage: Storage,
    layout: Layout,
    video_id: FromPath[str],
    key: FromPath[str],
) -> Stream:
    """Objects of a video (HLS playlists and segments, previews) served same-origin."""
    key = key.lstrip("/")
    # only this video's own outputs, at the prefixes the object layout derives for its id
    if not is_served_object(layout, video_id, key):
        raise NotFound("no such file")
    await visible_video(db, request, video_id)
    offset, length = _byte_range(request.headers.get("range", ""))
    try:
        response = await asyncio.to_thread(
            storage.get_object, settings.storage.bucket, key, offset, length
        )
    except Exception as exc:
        raise NotFound("no such file") from exc
    release = _releaser(response)

    async def body() -> AsyncIterator[bytes]:
        try:
            while chunk := await asyncio.to_thread(response.read, 256 * 1024):
                yield chunk
        finally:
            release()

    stream = body()
    # A client gone before the first byte means the generator never runs (nor its finally):
    # the object response is released when the generator is dropped.
    weakref.finalize(stream, release)
    media = response.headers.get("Content-Type", "application/octet-stream")
    headers = {"Accept-Ranges": "bytes"}
    for name in ("Content-Length", "Content-Range"):
        if response.headers.get(name):
            headers[name] = response.headers[name]
    # a byte range (HLS EXT-X-BYTERANGE, DASH mediaRange) is answered as the store answered it
    status = 206 if "Content-Range" in headers else 200
    return Stream(stream, media_type=media, headers=headers, status_code=status)


_RANGE = re.compile(r"\Abytes=([0-9]{1,15})-([0-9]{0,15})\Z")


def _byte_range(header: str) -> tuple[int, int]:
    """(offset, length) of a single ``Range: bytes=a-b`` or ``bytes=a-`` (length 0: to the end,
    as minio-py takes it); (0, 0), the whole object, for none or any other form."""
    found = _RANGE.match(header.strip())
    if found is None:
        return 0, 0
    first, last = int(found.group(1)), found.group(2)
    if not last:
        return first, 0
    if int(last) < first:
        return 0, 0
    return first, int(last) - first + 1


def _releaser(response: BaseHTTPResponse) -> Callable[[], None]:
    """Close ``response`` and give its connection back to the pool, once."""
    done: list[bool] = []

    def release() -> None:
        if not done:
            done.append(True)
            response.close()
            response.release_conn()

    return release
