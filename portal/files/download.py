"""``/videos/{id}/download/{height}``: one rung of a video as a file to keep, with its sound.

A CMAF rung is stored video only and the job's audio once beside it (issue 12): the download
joins them on the fly (:mod:`portal.files.remux`), FFmpeg reading both objects through presigned
URLs made here and never shown. A rung with nothing to join is sent as it is stored: a silent
video's (no ``audio.mp4``), one of the earlier layout (an MP4 with its audio in, beside the TS
playlists) and a conversion's one output.

Who may download is who may see the video (:func:`portal.videos.access.visible_video`, as the
file route); failures are exceptions, answered in one place (:mod:`portal.error_pages`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

from litestar import Controller, Request, get
from litestar.exceptions import ServiceUnavailableException
from litestar.params import FromPath
from litestar.response import Stream
from minio import Minio
from minio.error import S3Error

from connectors.ffmpeg import FFmpegMissing, ffmpeg_binary
from connectors.storage import MISSING_CODES, object_exists
from core.errors import public_reason
from core.logs import get_logger
from portal.deps import Db, Layout, RemuxSlotsDep, SettingsDep, Storage
from portal.errors import NotFound, Unavailable
from portal.files.remux import RemuxChild, RemuxFailed, RemuxSlots, remux_command
from portal.files.rungs import is_cmaf_rung
from portal.files.streaming import object_stream
from portal.models import Rendition
from portal.projection import is_served_object
from portal.videos.access import download_name, visible_video

__all__ = ["REMUX_DEADLINE", "DownloadController"]

log = get_logger("vidflow.portal.download")

# A remux ends by then, whatever the client's pace (FFmpeg writes only as fast as it is read);
# the URLs FFmpeg reads stay valid a little longer, so a reconnect within it still works.
REMUX_DEADLINE = timedelta(hours=1)
_URL_SLACK = timedelta(minutes=5)
RETRY_AFTER_SECONDS = 15


class DownloadController(Controller):
    """A video's rungs as files to keep."""

    include_in_schema = False

    @get("/videos/{video_id:str}/download/{height:int}")
    async def download(
        self,
        request: Request[Any, Any, Any],
        db: Db,
        settings: SettingsDep,
        storage: Storage,
        layout: Layout,
        remux_slots: RemuxSlotsDep,
        video_id: FromPath[str],
        height: FromPath[int],
    ) -> Stream:
        """The rung of ``height`` as an MP4 attachment: video and audio joined for a CMAF rung
        with an audio track, the stored object as it is otherwise."""
        video = await visible_video(db, request, video_id)
        rung = await db.get(Rendition, (video_id, height))
        if rung is None or not is_served_object(layout, video_id, rung.key):
            raise NotFound(f"no {height}p rendition of video {video_id}")
        name = download_name(video.filename or video.id, height, rung.key)
        headers = {"Content-Disposition": f'attachment; filename="{name}"'}
        bucket, audio = settings.storage.bucket, layout.audio(video_id)
        if is_cmaf_rung(layout, video_id, rung) and await _exists(storage, bucket, audio, video_id):
            body = await _remuxed(storage, bucket, rung.key, audio, remux_slots, video_id)
            return Stream(body, media_type="video/mp4", headers=headers)
        return await _stored(storage, bucket, rung.key, headers, video_id)


async def _exists(storage: Minio, bucket: str, key: str, video_id: str) -> bool:
    """Whether ``key`` is stored; a store that does not answer is a 503."""
    try:
        return await asyncio.to_thread(object_exists, storage, bucket, key)
    except Exception as exc:
        log.warning("download: store not answering", video_id=video_id, error=repr(exc))
        raise Unavailable(public_reason("the object store did not answer")) from exc


async def _remuxed(
    storage: Minio, bucket: str, video: str, audio: str, slots: RemuxSlots, video_id: str
) -> AsyncIterator[bytes]:
    """The joined MP4's bytes, once FFmpeg has written its first ones (a failure before that is
    still an error page, not a broken file)."""
    release = slots.take()
    if release is None:
        raise ServiceUnavailableException(
            detail="too many downloads are being prepared; try again shortly",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
    lifetime = REMUX_DEADLINE + _URL_SLACK
    try:  # signed locally: no request to the store; the URLs go to FFmpeg only
        urls = [
            storage.presigned_get_object(bucket, key, expires=lifetime) for key in (video, audio)
        ]
        argv = remux_command(ffmpeg_binary(), *urls)
        # started here, not in a thread: a request cancelled meanwhile would orphan it
        child = RemuxChild(argv, REMUX_DEADLINE.total_seconds(), release)
    except (FFmpegMissing, OSError) as exc:
        release()
        log.error("download: FFmpeg not started", video_id=video_id, error=repr(exc))
        raise Unavailable(public_reason("the download could not be prepared")) from exc
    try:
        first = await child.read()
        if not first:
            raise RemuxFailed("FFmpeg wrote nothing")
    except BaseException as exc:
        child.stop()  # failed, or the request was cancelled: no child left behind either way
        if not isinstance(exc, RemuxFailed):
            raise
        log.warning("download: remux failed", video_id=video_id, pid=child.pid, reason=str(exc))
        raise Unavailable(public_reason("the download could not be prepared", str(exc))) from exc
    return _logged(child.stream(first), video_id)


async def _logged(body: AsyncIterator[bytes], video_id: str) -> AsyncIterator[bytes]:
    """``body``, with a failure after the first byte logged (the client sees a cut transfer:
    no final chunk, so no file that looks whole)."""
    try:
        async for chunk in body:
            yield chunk
    except RemuxFailed as exc:
        log.warning("download: remux stopped", video_id=video_id, reason=str(exc))
        raise


async def _stored(
    storage: Minio, bucket: str, key: str, headers: dict[str, str], video_id: str
) -> Stream:
    """The stored object as it is, as an attachment."""
    try:
        response = await asyncio.to_thread(storage.get_object, bucket, key)
    except S3Error as exc:
        if exc.code in MISSING_CODES:
            raise NotFound("no such file") from exc
        log.warning("download: store refused", video_id=video_id, key=key, code=exc.code)
        raise Unavailable(public_reason("the object store did not answer")) from exc
    except Exception as exc:
        log.warning("download: store not answering", video_id=video_id, error=repr(exc))
        raise Unavailable(public_reason("the object store did not answer")) from exc
    stream = object_stream(response)
    sent = dict(headers)
    if length := response.headers.get("Content-Length"):
        sent["Content-Length"] = length
    media = response.headers.get("Content-Type") or "application/octet-stream"
    return Stream(stream, media_type=media, headers=sent)
