"""The per-video state of the transcode flow: picklable facts, never processes or handles."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from dataflows.transcode.hls import MasterEntry
from dataflows.transcode.ladder import PlannedRendition
from vidflow.events import Rendition, TranscodeRequested

__all__ = ["JobState", "UnitState", "group_units"]

UnitStatus = Literal["pending", "running", "done", "failed"]


@dataclass
class UnitState:
    """One FFmpeg run making one or several rungs."""

    unit_id: str
    labels: list[int]
    attempt: int = 0
    status: UnitStatus = "pending"
    not_before: float = 0.0
    error: str = ""


@dataclass
class JobState:
    """A video's current job: its request, plan, units and what is done."""

    request: TranscodeRequested
    position: tuple[str, int, int]  # topic, partition, offset of the request (for the DLQ)
    planned: list[PlannedRendition]
    units: list[UnitState]
    renditions: dict[int, Rendition] = field(default_factory=dict)
    entries: dict[int, MasterEntry] = field(default_factory=dict)
    seq: int = 0

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def planned_for(self, label: int) -> PlannedRendition:
        return next(p for p in self.planned if p.label == label)


def group_units(planned: list[PlannedRendition], mode: str) -> list[UnitState]:
    """``ladder``: one run decodes once for every rung (least CPU, fastest on few cores);
    ``rung``: one run per rung, lowest first (most parallel across a cluster)."""
    labels = [p.label for p in sorted(planned, key=lambda p: p.label)]
    if mode == "rung":
        return [UnitState(unit_id=f"{label}p", labels=[label]) for label in labels]
    return [UnitState(unit_id="ladder", labels=labels)]
