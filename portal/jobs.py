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

from connectors.kafka import flush_or_raise, produce_event
from core import events as ev
from core.errors import public_reason
from core.logs import get_logger
from core.settings import Settings
from portal import queries
from portal.auth import requires_uploader, viewer_of
from portal.deps import Db, KafkaProducer, SettingsDep
from portal.errors import NotFound
from portal.models import Video

__all__ = ["JobCreated", "JobRequest", "api_create_job", "request_job"]

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
    if not row.source_key or row.probe is None:
        raise NotFoundException("this video has no verified source yet")
    chosen = profile or settings.transcode.default_profile
    if chosen not in settings.transcode.profiles:
        raise ClientException(f"unknown profile {chosen!r}")
    stamp = ev.now()
    requested = ev.TranscodeRequested(
        id=ev.event_id("reprocess", row.id, stamp),
        video_id=row.id,
        job_id=ev.event_id("job", row.id, "reprocess", stamp),
        source=ev.SourceRef(
            bucket=settings.storage.bucket, key=row.source_key, size=row.size, sha256=row.sha256
        ),
        probe=msgspec.convert(row.probe, ev.Probe),
        profile=chosen,
        reason="reprocess",
        filename=row.filename,
        owner=row.owner,
    )
    produce_event(producer, settings.kafka.topic_jobs, requested)
    await asyncio.to_thread(flush_or_raise, producer)
    return requested


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
