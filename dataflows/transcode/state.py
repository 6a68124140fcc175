"""State of the transcode flow's steps: picklable facts, never processes or handles."""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from core.events import Rendition, VideoDelete
from dataflows.snapshots import Resumable
from dataflows.transcode.hls import MasterEntry
from dataflows.transcode.ladder import PlannedRendition
from dataflows.transcode.messages import JobPlan, UnitTask

__all__ = [
    "Cancelling",
    "CollectState",
    "EncodeState",
    "PlanState",
    "UnitSpec",
    "UnitStatus",
    "group_units",
]


class UnitStatus(StrEnum):
    """Where an encode unit is. A ``StrEnum`` whose values are the strings older releases
    stored, so their snapshots resume (see :meth:`EncodeState.__setstate__`)."""

    PENDING = "pending"  # waiting for its backoff or an encode slot
    ENCODING = "encoding"  # FFmpeg runs
    PUBLISHING = "publishing"  # the publishing child (HLS remux, uploads) runs
    CLEANING = "cleaning"  # cancelled: the clean-up child removes this job's uploads


@dataclass(frozen=True)
class UnitSpec:
    """One FFmpeg run making one or several rungs; ``early``: it makes the lowest rung, so the
    video is playable soon (it runs beside the bulk encodes until it plays, ``slots.py``)."""

    unit_id: str
    labels: tuple[int, ...]
    early: bool = False


def group_units(planned: list[PlannedRendition], mode: str) -> list[UnitSpec]:
    """The units of a ladder, lowest rung first.

    ``rung``: one run per rung (most parallel across a cluster); the lowest rung's is ``early``.
    ``ladder``: one run decodes the source once for every rung (least CPU), ``early`` since it
    makes the lowest rung, whose first fragment is the job's first playable moment. (A unit of
    its own for the lowest rung decoded the source a second time: the flow's largest cost over
    its FFmpeg work, issue 12; the early slot's niceness, given up once the job plays,
    ``slots.py``, keeps the first fragment within seconds instead.)
    """
    labels = tuple(p.label for p in sorted(planned, key=lambda p: p.label))
    if mode == "rung":
        units = [UnitSpec(f"{label}p", (label,)) for label in labels]
    else:
        units = [UnitSpec("ladder", labels)] if labels else []
    if units and (len(units) > 1 or len(labels) >= 3):
        units[0] = replace(units[0], early=True)
    return units


@dataclass
class PlanState(Resumable):
    """The video's latest job as planned: enough to skip a duplicate and forward a cancel.

    Discarded at ``expires`` (wall clock, ``state_ttl`` after planning), so a video leaves no
    state behind for ever; until then a replayed duplicate of the job is dropped.
    """

    plan: JobPlan
    unit_keys: dict[str, str]  # unit id -> routing key
    expires: float = float("inf")


@dataclass
class EncodeState(Resumable):
    """One unit: its task, attempts and where it is (``seq`` orders its own status run)."""

    task: UnitTask
    status: UnitStatus = UnitStatus.PENDING
    attempt: int = 0
    not_before: float = 0.0
    seq: int = 0
    published: bool = False  # a publishing child ran: objects of this job may be in the bucket
    # phase timings of the last attempt, seconds (logged with "unit completed", see timings())
    received: float = field(default_factory=time.time)  # wall clock: the task reached the step
    phases: dict[str, float] = field(default_factory=dict)

    @property
    def run(self) -> str:
        return f"{self.task.plan.job_id}:{self.task.unit_id}"

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def __setstate__(self, saved: dict[str, Any]) -> None:
        super().__setstate__(saved)
        self.status = UnitStatus(self.status)  # a plain string in older snapshots


@dataclass
class Cancelling(Resumable):
    """A cancelled job waiting for its units to be stopped and cleaned up."""

    plan: JobPlan
    seq: int
    pending: set[str]  # unit ids not yet reported stopped
    reason: str
    since: float  # wall clock, for a give-up deadline


@dataclass
class CollectState(Resumable):
    """A video's job as its units land; ``closed`` remembers the last jobs that ended.

    With no job running and none being cancelled, only ``closed`` (a tombstone) is left, until
    ``ended_at`` + ``state_ttl``, when the state is discarded.
    """

    plan: JobPlan | None = None
    seq: int = 0
    done_units: set[str] = field(default_factory=set)
    renditions: dict[int, Rendition] = field(default_factory=dict)
    entries: dict[int, MasterEntry] = field(default_factory=dict)
    durations: dict[int, float] = field(default_factory=dict)  # seconds of each landed rung
    previewing: bool = False
    closed: list[str] = field(default_factory=list)
    master_dirty: bool = False  # rungs landed since the master playlist was last written
    cancelling: dict[str, Cancelling] = field(default_factory=dict)
    ended_at: float = 0.0
    stopped: dict[str, set[str]] = field(default_factory=dict)  # job -> units stopped before
    # its close reached this step (they run on other workers)
    purging: list[VideoDelete] = field(default_factory=list)  # deletes waiting or running

    @property
    def idle(self) -> bool:
        return self.plan is None and not self.cancelling and not self.stopped and not self.purging

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def close(self) -> None:
        if self.plan is not None:
            self.closed = [*self.closed, self.plan.job_id][-8:]
        self.plan = None
        self.seq = 0
        self.done_units = set()
        self.renditions = {}
        self.entries = {}
        self.durations = {}
        self.previewing = False
        self.master_dirty = False
