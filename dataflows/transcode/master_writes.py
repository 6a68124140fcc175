"""Rewriting a job's HLS master playlist while its rungs land, in a child process.

Each landed rung makes the master playlist stale (``CollectState.master_dirty``); a child
rewrites it from the entries known so far, so a viewer can start on the first rung long before
the job completes. A failed or hung write is tried again at the next tick; the previews child
writes the final playlist, so no rewrite runs while it does.
"""

from __future__ import annotations

from pathlib import Path

from core.logs import get_logger
from dataflows.children import Failed, SpecTask
from dataflows.transcode.state import CollectState
from dataflows.transcode.tasks import MasterResult, MasterSpec, start

__all__ = ["MasterWrites"]

log = get_logger("vidflow.transcode")


class MasterWrites:
    """At most one master-playlist child per video, polled from the collect step's timer."""

    def __init__(self) -> None:
        self.child: SpecTask[MasterResult] | None = None

    @property
    def running(self) -> bool:
        """Whether a child is writing the playlist now."""
        return self.child is not None

    def cancel(self) -> None:
        """Stop a write in flight (a deleted video must not get its playlist back)."""
        if self.child is not None:
            self.child.cancel()
            self.child = None

    def tick(self, state: CollectState, workroot: Path, bucket: str, deadline: float) -> None:
        """Reap a finished write, then start one if rungs landed since the last."""
        if self.child is not None:
            outcome = self.child.poll()
            if outcome is None:
                return
            if isinstance(outcome, Failed):
                video = state.plan.video_id if state.plan else ""
                log.warning(
                    "master playlist write failed", video=video, reason=outcome.reason,
                    output=outcome.detail,
                )  # fmt: skip
                state.master_dirty = state.plan is not None
            self.child = None
        plan = state.plan
        if plan is None or not state.master_dirty or state.previewing:
            return
        workdir = workroot / plan.video_id / plan.job_id / "master"
        spec = MasterSpec(
            video_id=plan.video_id, job_id=plan.job_id, bucket=bucket,
            entries=list(state.entries.values()),
        )  # fmt: skip
        self.child = start(spec, workdir, "master", MasterResult, deadline)
        state.master_dirty = False
