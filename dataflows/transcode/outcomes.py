"""What ``encode`` tells ``collect`` of a published unit (kept apart from ``tasks``, which every
child imports: this side needs the flow's message types, and a child must start fast)."""

from __future__ import annotations

from dataflows.transcode.messages import UnitOutcome, UnitTask
from dataflows.transcode.tasks import PublishResult

__all__ = ["unit_outcome"]


def unit_outcome(task: UnitTask, result: PublishResult) -> UnitOutcome:
    """What ``collect`` is told of a published unit: its renditions, the master entries of its
    tracks (the audio one too, when it made it) and their durations."""
    # in the order of the unit's labels: a conversion's one output has no master entry
    rungs = list(zip(task.labels, result.rungs, strict=True))
    entries = {label: r.entry for label, r in rungs if r.entry is not None}
    if result.audio is not None:
        entries[result.audio.label] = result.audio
    return UnitOutcome(
        task.plan,
        task.unit_id,
        renditions={label: r.rendition for label, r in rungs},
        entries=entries,
        durations={label: r.duration for label, r in rungs},
    )
