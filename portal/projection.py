"""Applying one event to the projection (inside the caller's transaction).

Exactly-once although flows are at-least-once: an event whose ``id`` is already in the
timeline, or whose ``seq`` is not past the last applied one of its (video, run), changes
nothing. Every applied status event ends with ``pg_notify('vidflow_status', video_id)``, which
PostgreSQL delivers only if the transaction commits.
"""

from __future__ import annotations

from typing import Any

import msgspec
from sqlalchemy import Connection, Float, case, delete, select, text, update
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.dialects.postgresql import insert as pg_insert

from core import events as ev
from portal.models import Chunk, DeadLetterRow, Rendition, RunProgress, TimelineEvent, Video

__all__ = ["NOTIFY_CHANNEL", "apply", "summary_of"]

NOTIFY_CHANNEL = "vidflow_status"
TERMINAL_STATUSES = ("completed", "failed", "cancelled")


def summary_of(event: ev.Event) -> str:
    """One line for the timeline."""
    match event:
        case ev.IngestStarted():
            return f"ingest started ({event.origin})"
        case ev.ChunkStored():
            dedup = " (already stored)" if event.deduplicated else ""
            return f"chunk {event.chunk.index} stored, {event.chunk.size} bytes{dedup}"
        case ev.IngestRestarted():
            return event.reason
        case ev.IngestCompleted():
            m = event.manifest
            return f"source verified: {m.size} bytes in {len(m.chunks)} chunks"
        case ev.ProbeCompleted():
            p = event.probe
            return f"probed: {p.width}x{p.height}, {p.duration:.1f}s, {p.video_codec}"
        case ev.UnitStarted():
            return f"encoding {', '.join(f'{h}p' for h in event.heights)} (attempt {event.attempt})"
        case ev.UnitProgress():
            return f"{event.unit}: {event.percent:.0f}% at {event.speed:.2f}x"
        case ev.RenditionCompleted():
            r = event.rendition
            return f"{r.height}p ready ({r.width}x{r.height})"
        case ev.RenditionFailed():
            return f"{event.height}p failed (attempt {event.attempt}): {event.error[:200]}"
        case ev.JobCompleted():
            warned = "".join(f"; warning: {w}" for w in event.warnings)
            return f"completed: {len(event.renditions)} renditions{warned}"
        case ev.JobFailed():
            return f"failed: {event.reason}"
        case ev.JobCancelled():
            return "cancelled"
        case _:
            return event.type


def _video_changes(event: ev.Event) -> dict[str, Any]:
    match event:
        case ev.IngestStarted():
            return {
                "status": "ingesting",
                "stage": "ingest",
                "filename": event.filename,
                "owner": event.owner,
                "origin": event.origin,
                "error": "",
            }
        case ev.ChunkStored():
            return {"size": event.bytes_so_far}
        case ev.IngestRestarted():  # this version is abandoned; a new video carries on
            return {"size": 0, "status": "cancelled", "error": event.reason}
        case ev.IngestCompleted():
            m = event.manifest
            return {
                "size": m.size,
                "sha256": m.sha256,
                "source_key": m.source_key,
                "composite_sha256": m.composite_sha256,
            }
        case ev.ProbeCompleted():
            return {
                "probe": msgspec.to_builtins(event.probe),
                "status": "queued",
                "stage": "transcode",
            }
        case ev.UnitStarted():
            return {"status": "transcoding", "job_id": event.job_id, "error": ""}
        case ev.UnitProgress():
            return {"status": "transcoding", "progress": event.percent}
        case ev.JobCompleted():
            return {
                "job_id": event.job_id,
                "status": "completed",
                "progress": 100.0,
                "master": event.master,
                "poster": event.poster,
                "sprite": event.sprite,
                "sprite_vtt": event.sprite_vtt,
                "error": "; ".join(event.warnings),  # shown as a warning once completed
            }
        case ev.JobFailed():
            return {"status": "failed", "error": event.reason, "stage": event.stage}
        case ev.JobCancelled():
            return {"status": "cancelled", "job_id": event.job_id}
        case _:
            return {}


def _unit_percents(conn: Connection, video_id: str, job_id: str) -> list[float]:
    """The latest percent of each started unit of a job (0 for a unit started again)."""
    unit = TimelineEvent.body["unit"].astext
    percent = case(
        (TimelineEvent.type == "unit.progress", TimelineEvent.body["percent"].astext.cast(Float)),
        else_=0.0,
    )
    latest = (
        select(unit.label("unit"), percent.label("percent"))
        .where(
            TimelineEvent.video_id == video_id,
            TimelineEvent.body["job_id"].astext == job_id,
            TimelineEvent.type.in_(("unit.started", "unit.progress")),
        )
        .ext(distinct_on(unit))
        .order_by(unit, TimelineEvent.seq.desc(), TimelineEvent.type.desc())
    )
    return [float(row.percent) for row in conn.execute(latest)]


def _unit_changes(
    conn: Connection, event: ev.UnitStarted | ev.UnitProgress
) -> dict[str, Any] | None:
    """A job's units run on several workers, each its own run: the video's progress is the mean
    of its started units' latest percent, and a late unit event never reopens a finished job."""
    row = conn.execute(select(Video.status, Video.job_id).where(Video.id == event.video_id)).first()
    if row is not None and row.job_id == event.job_id and row.status in TERMINAL_STATUSES:
        return None  # leave the finished video as it is
    if isinstance(event, ev.UnitStarted):
        return {}
    percents = _unit_percents(conn, event.video_id, event.job_id)
    return {"progress": sum(percents) / len(percents) if percents else event.percent}


def _apply_status(conn: Connection, event: ev.StatusBase) -> bool:
    last = conn.execute(
        select(RunProgress.last_seq).where(
            RunProgress.video_id == event.video_id, RunProgress.run == event.run
        )
    ).scalar_one_or_none()
    if last is not None and event.seq <= last:
        return False
    inserted = conn.execute(
        pg_insert(TimelineEvent)
        .values(
            id=event.id,
            video_id=event.video_id,
            run=event.run,
            seq=event.seq,
            type=event.type,
            ts=event.ts,
            summary=summary_of(event),
            body=msgspec.to_builtins(event),
        )
        .on_conflict_do_nothing(index_elements=["id"])
        .returning(TimelineEvent.id)
    ).first()
    conn.execute(
        pg_insert(RunProgress)
        .values(video_id=event.video_id, run=event.run, last_seq=event.seq)
        .on_conflict_do_update(index_elements=["video_id", "run"], set_={"last_seq": event.seq})
    )
    if inserted is None:
        return False  # the same event again under a new sequence number (a replay)
    conn.execute(
        pg_insert(Video)
        .values(id=event.video_id, created_ts=event.ts, updated_ts=event.ts)
        .on_conflict_do_nothing(index_elements=["id"])
    )
    changes = {**_video_changes(event), "updated_ts": event.ts}
    if isinstance(event, ev.UnitStarted | ev.UnitProgress):
        unit = _unit_changes(conn, event)
        changes = {"updated_ts": event.ts} if unit is None else {**changes, **unit}
    conn.execute(update(Video).where(Video.id == event.video_id).values(**changes))
    if isinstance(event, ev.ChunkStored):
        c = event.chunk
        conn.execute(
            pg_insert(Chunk)
            .values(
                video_id=event.video_id,
                index=c.index,
                offset=c.offset,
                size=c.size,
                sha256=c.sha256,
                deduplicated=event.deduplicated,
            )
            .on_conflict_do_nothing()
        )
    elif isinstance(event, ev.IngestRestarted):
        conn.execute(delete(Chunk).where(Chunk.video_id == event.video_id))
    elif isinstance(event, ev.RenditionCompleted | ev.JobCompleted):
        done = [event.rendition] if isinstance(event, ev.RenditionCompleted) else event.renditions
        for r in done:
            conn.execute(
                pg_insert(Rendition)
                .values(
                    video_id=event.video_id,
                    height=r.height,
                    width=r.width,
                    key=r.key,
                    hls=r.hls,
                    bandwidth=r.bandwidth,
                    job_id=event.job_id,
                )
                .on_conflict_do_update(
                    index_elements=["video_id", "height"],
                    set_={"width": r.width, "key": r.key, "hls": r.hls, "bandwidth": r.bandwidth},
                )
            )
    conn.execute(
        text("SELECT pg_notify(:channel, :video)"),
        {"channel": NOTIFY_CHANNEL, "video": event.video_id},
    )
    return True


def apply(conn: Connection, event: ev.AnyEvent) -> bool:
    """Project ``event``; False when it was a duplicate or not a projected kind."""
    if isinstance(event, ev.StatusBase):
        return _apply_status(conn, event)
    if isinstance(event, ev.DeadLetter):
        stored = conn.execute(
            pg_insert(DeadLetterRow)
            .values(
                id=event.id,
                source_topic=event.source_topic,
                partition=event.partition,
                offset=event.offset,
                original_key=event.original_key,
                raw=event.raw,
                error=event.error,
                stage=event.stage,
                ts=event.ts,
            )
            .on_conflict_do_nothing(index_elements=["id"])
            .returning(DeadLetterRow.id)
        ).first()
        return stored is not None
    return False
