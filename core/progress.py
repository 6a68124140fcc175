"""A video's state folded from its status events: one vocabulary and one transition for the
CLI (``vidflow submit --wait/--json``), the portal's projection, its templates and its API.

:func:`transition` is the only place that says which status, progress, error and warnings an
event makes of a video; :func:`apply_event` (the CLI's in-memory fold) and the projection (the
``videos`` table) both go through it, so the two never disagree.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

import msgspec

from core import events as ev
from core.errors import scrub

__all__ = [
    "STATUS_VALUES",
    "TERMINAL",
    "SourceSummary",
    "StatusChange",
    "VideoStatus",
    "VideoSummary",
    "apply_event",
    "mean_progress",
    "transition",
]


class VideoStatus(StrEnum):
    """Where a video stands; the values are the strings stored, shown and printed."""

    INGESTING = "ingesting"
    QUEUED = "queued"
    TRANSCODING = "transcoding"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    DELETED = "deleted"  # the CLI's fold only: the projection drops a deleted video's row


TERMINAL: frozenset[VideoStatus] = frozenset(
    {VideoStatus.COMPLETED, VideoStatus.FAILED, VideoStatus.CANCELLED, VideoStatus.DELETED}
)
# the statuses a listed video can have (the portal's filter and badges): a deleted one is gone
STATUS_VALUES: tuple[str, ...] = tuple(s.value for s in VideoStatus if s is not VideoStatus.DELETED)


class StatusChange(msgspec.Struct, frozen=True, kw_only=True):
    """What one event changes of a video's status; ``None`` means "left as it is"."""

    status: VideoStatus | None = None
    progress: float | None = None
    error: str | None = None  # "" clears a previous error
    warnings: tuple[str, ...] | None = None  # of a completed job


def mean_progress(unit_percents: Iterable[float]) -> float | None:
    """A job's progress: the mean of its started units' latest percent (None before any)."""
    percents = list(unit_percents)
    return sum(percents) / len(percents) if percents else None


def _is_late(
    previous: str | None, previous_job: str, event: ev.UnitStarted | ev.UnitProgress
) -> bool:
    """A unit event of a job that already finished (units run on several workers, so one may
    arrive after ``job.completed``): it never reopens the job."""
    return previous in TERMINAL and previous_job == event.job_id


def transition(
    previous: str | None,
    previous_job: str,
    event: ev.Event,
    unit_percents: Iterable[float] = (),
) -> StatusChange | None:
    """The status change ``event`` makes of a video whose status is ``previous`` and whose
    current job is ``previous_job``; None when the event must change nothing at all (a late
    unit event of a finished job). ``unit_percents`` are the job's started units' latest
    percents including this event's (read by the caller: from memory or from the timeline)."""
    match event:
        case ev.IngestStarted():
            return StatusChange(status=VideoStatus.INGESTING, error="")
        case ev.IngestRestarted():  # this version is abandoned; a new video carries on
            return StatusChange(status=VideoStatus.CANCELLED, error=scrub(event.reason))
        case ev.ProbeCompleted():
            return StatusChange(status=VideoStatus.QUEUED)
        case ev.UnitStarted():
            if _is_late(previous, previous_job, event):
                return None
            return StatusChange(status=VideoStatus.TRANSCODING, error="")
        case ev.UnitProgress():
            if _is_late(previous, previous_job, event):
                return None
            mean = mean_progress(unit_percents)
            return StatusChange(
                status=VideoStatus.TRANSCODING,
                progress=event.percent if mean is None else mean,
            )
        case ev.JobCompleted():
            return StatusChange(
                status=VideoStatus.COMPLETED,
                progress=100.0,
                error="",
                warnings=tuple(scrub(w) for w in event.warnings),
            )
        case ev.JobFailed():
            return StatusChange(status=VideoStatus.FAILED, error=scrub(event.reason))
        case ev.JobCancelled():
            return StatusChange(status=VideoStatus.CANCELLED)
        case ev.VideoDeleted():
            return StatusChange(status=VideoStatus.DELETED)
        case _:
            return StatusChange()


class SourceSummary(msgspec.Struct, kw_only=True):
    """The verified source."""

    key: str
    size: int
    sha256: str


class VideoSummary(msgspec.Struct, kw_only=True):
    """Where one video stands; ``--json`` of ``vidflow submit`` prints this."""

    video_id: str
    status: VideoStatus = VideoStatus.INGESTING
    error: str | None = None
    filename: str = ""
    progress: float = 0.0
    bytes_ingested: int = 0
    source: SourceSummary | None = None
    probe: ev.Probe | None = None
    renditions: list[ev.Rendition] = msgspec.field(default_factory=list)
    master: str = ""
    job_id: str = ""
    unit_percent: dict[str, float] = msgspec.field(default_factory=dict)
    warnings: list[str] = msgspec.field(default_factory=list)  # of a completed job

    @property
    def finished(self) -> bool:
        """Whether no further event will change the outcome."""
        return self.status in TERMINAL


def _apply_change(summary: VideoSummary, change: StatusChange) -> None:
    if change.status is not None:
        summary.status = change.status
    if change.progress is not None:
        summary.progress = change.progress
    if change.error is not None:
        summary.error = change.error or None
    if change.warnings is not None:
        summary.warnings = list(change.warnings)


def _unit_percents(summary: VideoSummary, event: ev.UnitStarted | ev.UnitProgress) -> list[float]:
    """The units' latest percents once ``event`` is counted (a unit started again is at 0)."""
    if summary.job_id != event.job_id:
        summary.unit_percent, summary.job_id = {}, event.job_id  # another job's units
    percent = event.percent if isinstance(event, ev.UnitProgress) else 0.0
    summary.unit_percent[event.unit] = percent
    return list(summary.unit_percent.values())


def apply_event(summary: VideoSummary, event: ev.AnyEvent) -> VideoSummary:
    """Fold one status event into ``summary`` (mutates and returns it)."""
    percents: list[float] = []
    if isinstance(event, ev.UnitStarted | ev.UnitProgress):
        if _is_late(summary.status, summary.job_id, event):
            return summary
        percents = _unit_percents(summary, event)
    change = transition(summary.status, summary.job_id, event, percents)
    if change is None:
        return summary
    _apply_change(summary, change)
    match event:
        case ev.IngestStarted():
            summary.filename = event.filename
        case ev.ChunkStored():
            summary.bytes_ingested = max(summary.bytes_ingested, event.bytes_so_far)
        case ev.IngestRestarted():
            summary.bytes_ingested = 0
        case ev.IngestCompleted():
            m = event.manifest
            summary.source = SourceSummary(key=m.source_key, size=m.size, sha256=m.sha256)
        case ev.ProbeCompleted():
            summary.probe = event.probe
        case ev.RenditionCompleted():
            others = [r for r in summary.renditions if r.height != event.rendition.height]
            summary.renditions = sorted([*others, event.rendition], key=lambda r: -r.height)
        case ev.JobCompleted():
            summary.renditions = sorted(event.renditions, key=lambda r: -r.height)
            summary.master, summary.job_id = event.master, event.job_id
        case ev.JobCancelled():
            summary.job_id = event.job_id
        case _:
            pass
    return summary
