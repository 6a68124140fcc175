"""Reprocess: a new transcode job per selected video, from its verified source (``core.jobs``);
its outputs land under the same keys with the same content plus any rung the profile gained."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from confluent_kafka import Producer
from rich.progress import Progress

from connectors.kafka import deliver, make_producer
from core.jobs import NoVerifiedSource, UnknownProfile, reprocess_request
from core.logs import get_logger
from core.settings import Settings
from portal.jobs import select_videos
from portal.models import Video
from vidflow.replay.selections import VideoSelection, sessions

__all__ = ["ReprocessReport", "reprocess"]

log = get_logger("vidflow.replay")


@dataclass
class ReprocessReport:
    """What a reprocess did: videos selected, requests sent, and those skipped with why."""

    selected: list[Video]
    sent: list[str]
    skipped: dict[str, str]


async def reprocess(
    settings: Settings,
    selection: VideoSelection,
    profile: str = "",
    *,
    dry_run: bool = False,
    producer: Producer | None = None,
    progress: Progress | None = None,
) -> ReprocessReport:
    """One ``transcode.requested`` (reason ``reprocess``, a fresh job id) per selected video.

    Each is acknowledged by the broker before the next is sent, so the progress shown is what
    Kafka holds. Videos without a verified source are skipped; an unknown profile refuses all.
    """
    if (profile or settings.transcode.default_profile) not in settings.transcode.profiles:
        raise UnknownProfile(f"unknown profile {profile!r}")
    async with sessions(settings) as maker, maker() as session:
        rows = await select_videos(
            session, video_id=selection.video_id, since=selection.since, status=selection.status
        )
    report = ReprocessReport(selected=rows, sent=[], skipped={})
    if dry_run or not rows:
        return report
    producer = producer or make_producer(settings.kafka)
    task = progress.add_task("reprocess", total=len(rows)) if progress else None
    for row in rows:
        try:
            requested = reprocess_request(
                settings, video_id=row.id, source_key=row.source_key, size=row.size,
                sha256=row.sha256, probe=row.probe, profile=profile, filename=row.filename,
                owner=row.owner,
            )  # fmt: skip
        except NoVerifiedSource:
            report.skipped[row.id] = "no verified source yet"
        else:
            await asyncio.to_thread(deliver, producer, settings.kafka.topic_jobs, requested)
            report.sent.append(row.id)
            log.info("reprocess requested", video_id=row.id, job_id=requested.job_id)
        if progress is not None and task is not None:
            progress.advance(task)
    return report
