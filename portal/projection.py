"""Applying one event to the projection (inside the caller's transaction).

Exactly-once although flows are at-least-once: an event whose ``id`` is already in the
timeline, or whose ``seq`` is not past the last applied one of its (video, run), changes
nothing. Every applied status event ends with ``pg_notify('vidflow_status', video_id)``, which
PostgreSQL delivers only if the transaction commits.

Status events are untrusted input (see the trust model in the design): before anything is
written, :func:`apply` raises :class:`Rejected` for an event that would move a video to another
owner or names an object key the object layout does not derive for that video. The projector
turns that (and a database error caused by the event's own values) into a dead letter. Every
reason, error and warning is stored scrubbed (:func:`core.errors.scrub`): the portal shows
them.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec
from sqlalchemy import Connection, Float, case, delete, select, text, update
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.dialects.postgresql import insert as pg_insert

from core import events as ev
from core.errors import scrub
from core.layout import ForeignSource, ObjectLayout
from core.progress import transition
from portal.models import (
    Chunk,
    DeadLetterRow,
    Rendition,
    RunProgress,
    TimelineEvent,
    Video,
    VideoTombstone,
)

__all__ = [
    "NOTIFY_CHANNEL",
    "Rejected",
    "apply",
    "is_served_object",
    "scrubbed",
    "summary_of",
]

NOTIFY_CHANNEL = "vidflow_status"
_RENDITION_LABEL = re.compile(r"([0-9]{1,10})p\.mp4\Z")
_SERVED_TAIL = re.compile(r"\A(?:[A-Za-z0-9_-][A-Za-z0-9._-]*/)*[A-Za-z0-9_-][A-Za-z0-9._-]*\Z")


def is_served_object(layout: ObjectLayout, video_id: str, key: str) -> bool:
    """Whether the portal may sign or stream ``key`` for video ``video_id``: an object under one
    of the prefixes the layout derives for that video's outputs (renditions, HLS, previews),
    never its source, another video's objects, or a path that climbs out (``..``)."""
    return any(
        key.startswith(prefix) and _SERVED_TAIL.match(key[len(prefix) :]) is not None
        for prefix in layout.playable_prefixes(video_id)
    )


class Rejected(ValueError):
    """An event the projection refuses (its text says why, for the dead letter)."""


def scrubbed(event: ev.AnyEvent) -> ev.AnyEvent:
    """``event`` with every free text a user may see scrubbed: a producer's failure text may
    carry a presigned URL, a traceback or a local path (defense in depth: producers use
    ``public_reason`` already)."""
    match event:
        case ev.IngestRestarted() | ev.JobFailed():
            return msgspec.structs.replace(event, reason=scrub(event.reason))
        case ev.RenditionFailed():
            return msgspec.structs.replace(event, error=scrub(event.error))
        case ev.JobCompleted():
            return msgspec.structs.replace(event, warnings=[scrub(w) for w in event.warnings])
        case ev.DeadLetter():
            return msgspec.structs.replace(event, error=scrub(event.error))
        case _:
            return event


def _check_rendition(layout: ObjectLayout, video_id: str, r: ev.Rendition) -> None:
    """A rung's MP4 and playlist are the ones the layout derives for this video (the number in
    the name is the rung's label, its short side, which is not always ``height``)."""
    if not r.hls and layout.is_converted(video_id, r.key):
        return  # a conversion profile's one output, no HLS
    found = _RENDITION_LABEL.search(r.key)
    label = int(found.group(1)) if found else -1
    if (
        label < 0
        or r.key != layout.rendition(video_id, label)
        or r.hls
        not in (layout.hls_playlist(video_id, label), layout.legacy_hls_playlist(video_id, label))
    ):
        raise Rejected(f"rendition {r.height}p names objects that are not this video's")


def _check_keys(layout: ObjectLayout, event: ev.StatusBase) -> None:
    """Every object key an event names must be derived from its video id, never taken from it:
    the portal signs and streams these keys."""
    video_id = event.video_id
    match event:
        case ev.RenditionCompleted():
            _check_rendition(layout, video_id, event.rendition)
        case ev.JobCompleted():
            for r in event.renditions:
                _check_rendition(layout, video_id, r)
            derived = {
                "master": layout.hls_master(video_id),
                "poster": layout.poster(video_id),
                "sprite": layout.sprite(video_id),
                "sprite_vtt": layout.sprite_vtt(video_id),
            }
            legacy = {"master": layout.legacy_hls_master(video_id)}  # videos made before CMAF
            for field, key in derived.items():
                if getattr(event, field) not in ("", key, legacy.get(field, key)):
                    raise Rejected(f"the job's {field} is not this video's")
        case ev.IngestCompleted():
            # the bytes may be the upload's or an identical file's source: any key the layout
            # derives to hold a source, never another object (the portal never serves it)
            try:
                layout.source_of(event.manifest, video_id)
            except ForeignSource:
                raise Rejected("the manifest names a source that is not this video's") from None
        case _:
            pass


def _check_owner(conn: Connection, event: ev.StatusBase) -> None:
    """A video's owner is set when its row is created and never changes by event: a later
    ``ingest.started`` naming another owner (a new run is all it takes) is refused."""
    if not isinstance(event, ev.IngestStarted):
        return
    owner = conn.execute(select(Video.owner).where(Video.id == event.video_id)).scalar_one_or_none()
    if owner is not None and owner != event.owner:
        raise Rejected("ingest.started names another owner than the video has")


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
        case ev.VideoDeleted():
            return "deleted"
        case _:
            return event.type


def _video_changes(event: ev.Event) -> dict[str, Any]:
    """The columns an event sets besides status, progress and error (:func:`_status_changes`)."""
    match event:
        case ev.IngestStarted():  # never the owner: it is set once, with the row
            return {"stage": "ingest", "filename": event.filename, "origin": event.origin}
        case ev.ChunkStored():
            return {"size": event.bytes_so_far}
        case ev.IngestRestarted():
            return {"size": 0}
        case ev.IngestCompleted():
            m = event.manifest
            return {
                "size": m.size,
                "sha256": m.sha256,
                "source_key": m.source_key,
                "composite_sha256": m.composite_sha256,
            }
        case ev.ProbeCompleted():
            return {"probe": msgspec.to_builtins(event.probe), "stage": "transcode"}
        case ev.UnitStarted():
            return {"job_id": event.job_id}
        case ev.JobCompleted():
            keys = ("job_id", "master", "poster", "sprite", "sprite_vtt")
            return {key: getattr(event, key) for key in keys}
        case ev.JobFailed():
            return {"stage": event.stage}
        case ev.JobCancelled():
            return {"job_id": event.job_id}
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


def _status_changes(conn: Connection, event: ev.StatusBase) -> dict[str, Any] | None:
    """The status, progress and error columns ``event`` sets, through the one transition the
    CLI uses too (:func:`core.progress.transition`); None when it changes nothing at all."""
    row = conn.execute(select(Video.status, Video.job_id).where(Video.id == event.video_id)).first()
    previous, job = (row.status, row.job_id or "") if row is not None else (None, "")
    percents: list[float] = []
    if isinstance(event, ev.UnitProgress):
        percents = _unit_percents(conn, event.video_id, event.job_id)
    change = transition(previous, job, event, percents)
    if change is None:
        return None
    changes: dict[str, Any] = {}
    if change.status is not None:
        changes["status"] = change.status.value
    if change.progress is not None:
        changes["progress"] = change.progress
    if change.error is not None:  # a completed job's warnings are shown in its error column
        changes["error"] = "; ".join(change.warnings or ()) or change.error
    return changes


def _notify(conn: Connection, video_id: str) -> None:
    conn.execute(
        text("SELECT pg_notify(:channel, :video)"), {"channel": NOTIFY_CHANNEL, "video": video_id}
    )


def _deleted(conn: Connection, video_id: str) -> bool:
    found = select(VideoTombstone.video_id).where(VideoTombstone.video_id == video_id)
    return conn.execute(found).first() is not None


def _apply_deleted(conn: Connection, event: ev.VideoDeleted) -> bool:
    """Drop the video and everything projected of it, and keep a tombstone (the first delete's)
    so no later event of it brings it back; a repeated ``video.deleted`` changes nothing."""
    stone = conn.execute(
        pg_insert(VideoTombstone)
        .values(
            video_id=event.video_id, event_id=event.id, requested_by=event.requested_by,
            ts=event.ts,
        )
        .on_conflict_do_nothing(index_elements=["video_id"])
        .returning(VideoTombstone.video_id)
    ).first()  # fmt: skip
    for table in (Chunk, Rendition, RunProgress, TimelineEvent):
        conn.execute(delete(table).where(table.video_id == event.video_id))
    conn.execute(delete(Video).where(Video.id == event.video_id))
    _notify(conn, event.video_id)
    return stone is not None


def _apply_status(conn: Connection, event: ev.StatusBase, layout: ObjectLayout) -> bool:
    if isinstance(event, ev.VideoDeleted):
        return _apply_deleted(conn, event)
    if _deleted(conn, event.video_id):
        return False  # a late or replayed event of a deleted video: it stays deleted
    _check_keys(layout, event)
    _check_owner(conn, event)
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
            summary=scrub(summary_of(event)),
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
    owner = event.owner if isinstance(event, ev.IngestStarted) else ""
    conn.execute(
        pg_insert(Video)
        .values(id=event.video_id, owner=owner, created_ts=event.ts, updated_ts=event.ts)
        .on_conflict_do_nothing(index_elements=["id"])
    )
    status = _status_changes(conn, event)
    changes: dict[str, Any] = {"updated_ts": event.ts}
    if status is not None:  # not a late unit event of a finished job
        changes.update(_video_changes(event), **status)
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
    _notify(conn, event.video_id)
    return True


def apply(conn: Connection, event: ev.AnyEvent, layout: ObjectLayout) -> bool:
    """Project ``event``; False when it was a duplicate or not a projected kind.

    Raises :class:`Rejected` (before writing anything) for an event that must not be applied;
    ``layout`` derives the keys a video's events may name.
    """
    event = scrubbed(event)
    if isinstance(event, ev.StatusBase):
        return _apply_status(conn, event, layout)
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
