"""Creating a transcode job for a video already ingested: its verified source, another ladder.

The page's Reprocess button and ``POST /api/videos/{id}/jobs`` both end here, so a job asked
for by a person or by a program is the same ``transcode.requested`` event.
"""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
from confluent_kafka import Producer
from litestar import Request, post
from litestar.exceptions import (
    ClientException,
    HTTPException,
    NotFoundException,
    ServiceUnavailableException,
)
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_202_ACCEPTED
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from connectors.kafka import flush_or_raise, produce_event
from core import events as ev
from core.errors import public_reason
from core.jobs import NoVerifiedSource, UnknownProfile, reprocess_request
from core.logs import get_logger
from core.settings import Settings
from portal import queries
from portal.auth import requires_uploader, viewer_of
from portal.deps import Db, KafkaProducer, SettingsDep
from portal.errors import NotFound
from portal.models import Video

__all__ = [
    "JobCreated",
    "JobRequest",
    "api_create_job",
    "job_for",
    "request_job",
    "select_videos",
]

log = get_logger("vidflow.portal.jobs")


class JobRequest(msgspec.Struct, frozen=True):
    """Which ladder to make (the default profile when empty)."""

    profile: str = ""


class JobCreated(msgspec.Struct, frozen=True):
    """The job the transcode flow was asked to run."""

    video_id: str
    job_id: str
    profile: str


async def request_job(
    settings: Settings, row: Video, profile: str, producer: Producer
) -> ev.TranscodeRequested:
    """Produce ``transcode.requested`` (reason ``reprocess``) for ``row``'s verified source."""
    requested = job_for(settings, row, profile)
    produce_event(producer, settings.kafka.topic_jobs, requested)
    await asyncio.to_thread(flush_or_raise, producer)
    return requested


def job_for(settings: Settings, row: Video, profile: str) -> ev.TranscodeRequested:
    """The request for ``row`` (``core.jobs``), its refusals as HTTP errors (404, 400)."""
    try:
        return reprocess_request(
            settings, video_id=row.id, source_key=row.source_key, size=row.size,
            sha256=row.sha256, probe=row.probe, profile=profile, filename=row.filename,
            owner=row.owner,
        )  # fmt: skip
    except NoVerifiedSource:
        raise NotFoundException("this video has no verified source yet") from None
    except UnknownProfile as exc:
        raise ClientException(str(exc)) from None


async def select_videos(
    session: AsyncSession,
    *,
    video_id: str | None = None,
    since: float | None = None,
    status: str | None = None,
) -> list[Video]:
    """Videos of the projection to reprocess: one, those created since ``since`` (epoch
    seconds), those in ``status``, or all (no filter); oldest first so a bulk run is ordered."""
    query = select(Video).order_by(Video.created_ts, Video.id)
    if video_id is not None:
        query = query.where(Video.id == video_id)
    if since is not None:
        query = query.where(Video.created_ts >= since)
    if status is not None:
        query = query.where(Video.status == status)
    return list((await session.execute(query)).scalars())


@post(
    "/api/videos/{video_id:str}/jobs",
    guards=[requires_uploader],
    status_code=HTTP_202_ACCEPTED,
    tags=["videos"],
)
async def api_create_job(
    request: Request[Any, Any, Any],
    db: Db,
    settings: SettingsDep,
    producer: KafkaProducer,
    video_id: FromPath[str],
    data: JSONBody[JobRequest],
) -> JobCreated:
    """Make a video's ladder again (optionally with another profile) from its verified source."""
    row = await queries.visible_video(db, video_id, viewer_of(request).owner_scope)
    if row is None:
        raise NotFound(f"no video {video_id}")
    try:
        requested = await request_job(settings, row, data.profile, producer)
    except HTTPException:
        raise
    except Exception as exc:  # Kafka did not take it: say so (503), the detail goes to the log
        log.warning("job not requested", video_id=video_id, error=f"{type(exc).__name__}: {exc}")
        raise ServiceUnavailableException(public_reason("could not request the job", exc)) from exc
    return JobCreated(video_id=video_id, job_id=requested.job_id, profile=requested.profile)
