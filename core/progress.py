"""A video's state folded from its status events: one reading for the CLI and the portal alike."""

from __future__ import annotations

from typing import Literal

import msgspec

from core import events as ev
from core.errors import scrub

__all__ = ["TERMINAL", "SourceSummary", "VideoSummary", "apply_event"]

Status = Literal["ingesting", "queued", "transcoding", "completed", "failed", "cancelled"]
TERMINAL: frozenset[str] = frozenset({"completed", "failed", "cancelled"})


class SourceSummary(msgspec.Struct, kw_only=True):
    """The verified source."""

    key: str
    size: int
    sha256: str


class VideoSummary(msgspec.Struct, kw_only=True):
    """Where one video stands; ``--json`` of ``vidflow submit`` prints this."""

    video_id: str
    status: Status = "ingesting"
    error: str | None = None
    filename: str = ""
    progress: float = 0.0
    bytes_ingested: int = 0
    source: SourceSummary | None = None
    probe: ev.Probe | None = None
    renditions: list[ev.Rendition] = msgspec.field(default_factory=list)
    master: str = ""
    unit_percent: dict[str, float] = msgspec.field(default_factory=dict)
    warnings: list[str] = msgspec.field(default_factory=list)  # of a completed job

    @property
    def finished(self) -> bool:
        """Whether no further event will change the outcome."""
        return self.status in TERMINAL


def apply_event(summary: VideoSummary, event: ev.AnyEvent) -> VideoSummary:
    """Fold one status event into ``summary`` (mutates and returns it)."""
    match event:
        case ev.IngestStarted():
            summary.status, summary.filename = "ingesting", event.filename
        case ev.ChunkStored():
            summary.bytes_ingested = max(summary.bytes_ingested, event.bytes_so_far)
        case ev.IngestRestarted():  # this version is abandoned; a new video carries on
            summary.bytes_ingested, summary.status = 0, "cancelled"
            summary.error = scrub(event.reason)  # shown by `vidflow submit`: no URL, no path
        case ev.IngestCompleted():
            m = event.manifest
            summary.source = SourceSummary(key=m.source_key, size=m.size, sha256=m.sha256)
        case ev.ProbeCompleted():
            summary.probe, summary.status = event.probe, "queued"
        case ev.UnitStarted():
            summary.status = "transcoding"
            summary.unit_percent.setdefault(event.unit, 0.0)
        case ev.UnitProgress():
            summary.status = "transcoding"
            summary.unit_percent[event.unit] = event.percent
            summary.progress = sum(summary.unit_percent.values()) / len(summary.unit_percent)
        case ev.RenditionCompleted():
            others = [r for r in summary.renditions if r.height != event.rendition.height]
            summary.renditions = sorted([*others, event.rendition], key=lambda r: -r.height)
        case ev.JobCompleted():
            summary.status, summary.progress = "completed", 100.0
            summary.renditions = sorted(event.renditions, key=lambda r: -r.height)
            summary.master = event.master
            summary.error = None
            summary.warnings = list(event.warnings)
        case ev.JobFailed():
            summary.status, summary.error = "failed", scrub(event.reason)
        case ev.JobCancelled():
            summary.status = "cancelled"
        case _:
            pass
    return summary
