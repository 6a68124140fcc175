"""Deleting a video: the page's Delete button and ``DELETE /api/videos/{id}``.

Both produce one ``video.delete`` on ``vidflow.jobs``; the transcode flow cancels the video's
running job, removes every object of it and reports ``video.deleted``, which the projection
turns into a dropped video and a tombstone. Only the owner or an admin may ask: someone else's
video is as missing (404) as an unknown one, and a viewer (or a read token) may not (403).
"""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
from confluent_kafka import Producer
from litestar import Request, delete, post
from litestar.exceptions import NotFoundException, ServiceUnavailableException
from litestar.params import FromPath
from litestar.response import Template
from litestar.status_codes import HTTP_202_ACCEPTED, HTTP_503_SERVICE_UNAVAILABLE
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from connectors.kafka import flush_or_raise, produce_event
from core import events as ev
from core.errors import public_reason
from core.logs import get_logger
from core.settings import Settings
from portal import queries
from portal.auth import requires_uploader, viewer_of
from portal.deps import KafkaProducer, Sessions, SettingsDep
from portal.templating import action_result

__all__ = ["HANDLERS", "VideoDeletion", "api_delete_video", "delete_video", "request_delete"]

log = get_logger("vidflow.portal.deletion")


class VideoDeletion(msgspec.Struct, frozen=True):
    """The delete the transcode flow was asked to carry out (``delete_id``: its event id)."""

    video_id: str
    delete_id: str


async def request_delete(
    settings: Settings, video_id: str, requested_by: str, producer: Producer
) -> ev.VideoDelete:
    """Produce ``video.delete`` for ``video_id`` and wait until Kafka has it."""
    event = ev.VideoDelete(
        id=ev.event_id("delete", video_id, requested_by, ev.now()),
        video_id=video_id,
        requested_by=requested_by,
    )
    produce_event(producer, settings.kafka.topic_jobs, event)
    await asyncio.to_thread(flush_or_raise, producer)
    log.info("delete requested", video_id=video_id, by=requested_by)
    return event


async def _deletable(
    sessions: async_sessionmaker[AsyncSession], request: Request[Any, Any, Any], video_id: str
) -> None:
    """Raise 404 unless the requester owns the video or is an admin.

    Its own short session, closed before Kafka is awaited: a slow broker holds no connection.
    """
    async with sessions() as session:
        row = await queries.visible_video(session, video_id, viewer_of(request).owner_scope)
    if row is None:
        raise NotFoundException(f"no video {video_id}")


@post("/videos/{video_id:str}/delete", guards=[requires_uploader], include_in_schema=False)
async def delete_video(
    request: Request[Any, Any, Any],
    sessions: Sessions,
    settings: SettingsDep,
    producer: KafkaProducer,
    video_id: FromPath[str],
) -> Template:
    """The page's Delete button (confirmed in the browser): asks, then sends the page home."""
    await _deletable(sessions, request, video_id)
    try:
        await request_delete(settings, video_id, viewer_of(request).username, producer)
    except Exception as exc:  # noqa: BLE001 - the button says what failed, the log says why
        log.warning("delete not sent", video_id=video_id, error=f"{type(exc).__name__}: {exc}")
        reason = public_reason("could not ask for the delete", exc)
        return action_result(reason, HTTP_503_SERVICE_UNAVAILABLE)
    return action_result("Delete requested.", HTTP_202_ACCEPTED, headers={"HX-Redirect": "/"})


@delete(
    "/api/videos/{video_id:str}",
    guards=[requires_uploader],
    status_code=HTTP_202_ACCEPTED,
    tags=["videos"],
)
async def api_delete_video(
    request: Request[Any, Any, Any],
    sessions: Sessions,
    settings: SettingsDep,
    producer: KafkaProducer,
    video_id: FromPath[str],
) -> VideoDeletion:
    """Delete a video (owner or admin): 202 once ``video.delete`` is on the jobs topic."""
    await _deletable(sessions, request, video_id)
    try:
        event = await request_delete(settings, video_id, viewer_of(request).username, producer)
    except Exception as exc:  # Kafka did not take it: say so (503), the detail goes to the log
        log.warning("delete not sent", video_id=video_id, error=f"{type(exc).__name__}: {exc}")
        raise ServiceUnavailableException(
            public_reason("could not ask for the delete", exc)
        ) from exc
    return VideoDeletion(video_id=video_id, delete_id=event.id)


HANDLERS = (delete_video, api_delete_video)  # registered in portal/app.py's route list
