"""``/videos/{id}/files/{key}``: a video's playable objects streamed from the store, for the
player. Downloads are elsewhere: a CMAF rung's joins its audio track on the fly
(:mod:`portal.files.download`); an earlier layout's MP4 is a short-lived presigned link.

A ``Range`` request gets the piece it asks for (206, see :mod:`portal.files.ranges`): the players
read byte-range segments of one fragmented MP4 per rung."""

from __future__ import annotations

import asyncio
from typing import Any

from litestar import Request, Response, get
from litestar.params import FromPath
from litestar.response import Stream
from minio.error import S3Error
from urllib3 import BaseHTTPResponse

from portal.deps import Db, Layout, SettingsDep, Storage
from portal.errors import NotFound
from portal.files.ranges import store_range
from portal.files.streaming import object_stream
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
) -> Stream | Response[bytes]:
    """Objects of a video (playlists, manifests, media, previews) served same-origin, whole or
    the one byte range asked for."""
    key = key.lstrip("/")
    # only this video's own outputs, at the prefixes the object layout derives for its id
    if not is_served_object(layout, video_id, key):
        raise NotFound("no such file")
    await visible_video(db, request, video_id)
    bucket, wanted = settings.storage.bucket, store_range(request.headers.get("range"))
    try:
        response = await asyncio.to_thread(
            storage.get_object, bucket, key, request_headers={"Range": wanted} if wanted else None
        )
    except S3Error as exc:
        if exc.code != "InvalidRange":
            raise NotFound("no such file") from exc
        size = (await asyncio.to_thread(storage.stat_object, bucket, key)).size
        return Response(b"", status_code=416, headers={"Content-Range": f"bytes */{size}"})
    except Exception as exc:
        raise NotFound("no such file") from exc
    stream = object_stream(response)
    media = response.headers.get("Content-Type", "application/octet-stream")
    return Stream(
        stream, media_type=media, status_code=response.status, headers=_passed_on(response)
    )


def _passed_on(response: BaseHTTPResponse) -> dict[str, str]:
    """The store's length and range of what it sent, and that ranges are served."""
    headers = {"Accept-Ranges": "bytes"}
    for name in ("Content-Length", "Content-Range"):
        if value := response.headers.get(name):
            headers[name] = value
    return headers
