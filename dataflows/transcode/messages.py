"""What the transcode flow's three stateful steps send each other (picklable, no handles).

``plan`` (key: video) sends :class:`UnitTask` / :class:`UnitCancel` to ``encode`` (key: the
unit's routing key) and :class:`JobOpened` / :class:`JobClosed` to ``collect`` (key: video);
``encode`` sends :class:`UnitOutcome` to ``collect``. Anything bound for Kafka is an
:class:`~dataflows.kafka_io.Outbound`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from core.events import Rendition, TranscodeRequested, VideoDelete
from dataflows.kafka_io import Outbound
from dataflows.transcode.hls import MasterEntry
from dataflows.transcode.ladder import PlannedRendition

__all__ = [
    "CollectMessage",
    "EncodeMessage",
    "JobClosed",
    "JobOpened",
    "JobPlan",
    "Routed",
    "UnitCancel",
    "UnitLive",
    "UnitOutcome",
    "UnitStopped",
    "UnitTask",
    "VideoPurge",
]


@dataclass(frozen=True)
class JobPlan:
    """A job as planned: its request, where it was read, its renditions and its units."""

    request: TranscodeRequested
    position: tuple[str, int, int]  # topic, partition, offset of the request (for the DLQ)
    planned: tuple[PlannedRendition, ...]
    units: tuple[str, ...]  # unit ids
    nonce: str  # this planning of the job (a replayed request is planned anew)
    error: str = ""  # the job cannot run at all (unknown profile); public

    @property
    def video_id(self) -> str:
        return self.request.video_id

    @property
    def job_id(self) -> str:
        return self.request.job_id

    def planned_for(self, label: int) -> PlannedRendition:
        return next(p for p in self.planned if p.label == label)


@dataclass(frozen=True)
class UnitTask:
    """Run one encode unit of ``plan``."""

    plan: JobPlan
    unit_id: str
    labels: tuple[int, ...]
    key: str  # the routing key this unit is keyed by
    early: bool = False  # the first-playable unit: its own slot, not niced (see group_units)


@dataclass(frozen=True)
class UnitCancel:
    """Stop the unit ``unit_id`` of ``job_id`` keyed ``key`` (it may have finished already)."""

    job_id: str
    key: str
    video_id: str = ""
    unit_id: str = ""


@dataclass(frozen=True)
class UnitStopped:
    """``encode`` stopped a unit on request: its children are dead and what it had uploaded for
    its unfinished rungs is removed (``collect`` reports ``job.cancelled`` once every unit is)."""

    video_id: str
    job_id: str
    unit_id: str


@dataclass(frozen=True)
class UnitOutcome:
    """A unit finished: its renditions, or the reason it finally failed."""

    plan: JobPlan
    unit_id: str
    renditions: dict[int, Rendition] = field(default_factory=dict)
    entries: dict[int, MasterEntry] = field(default_factory=dict)
    error: str = ""  # public (core.errors.public_reason); the detail is in the log
    durations: dict[int, float] = field(default_factory=dict)  # seconds of each rendition

    @property
    def ok(self) -> bool:
        return not self.error


@dataclass(frozen=True)
class UnitLive:
    """Tracks of a unit still encoding have their first fragments up: the master may list them
    (``entries`` marked ``live``; the unit's outcome replaces them)."""

    plan: JobPlan
    unit_id: str
    entries: dict[int, MasterEntry]


@dataclass(frozen=True)
class JobOpened:
    """``plan`` has fanned out this job's units."""

    plan: JobPlan


@dataclass(frozen=True)
class JobClosed:
    """The job was cancelled (on request or superseded): stop collecting it."""

    video_id: str
    job_id: str
    reason: str


@dataclass(frozen=True)
class VideoPurge:
    """Remove every object of the video once its job (if any) is stopped (``video.delete``)."""

    request: VideoDelete

    @property
    def video_id(self) -> str:
        return self.request.video_id


EncodeMessage = UnitTask | UnitCancel
CollectMessage = JobOpened | JobClosed | UnitOutcome | UnitLive | UnitStopped | VideoPurge
Routed = Outbound | EncodeMessage | CollectMessage
