"""Rewriting a job's HLS master playlist while its rungs land, in a child process.

Each landed rung makes the master playlist stale (``CollectState.master_dirty``); a child
rewrites it from the entries known so far, so a viewer can start on the first rung long before
the job completes. A failed or hung write is tried again at the next tick; the previews child
writes the final playlist, so no rewrite runs while it does.

The first write of a job is the last hop to its first playable moment (issue 12), so its child
is started warm when the job opens (Python and its imports, about a second, load while the first
fragment encodes, niced) and handed its spec when the first track goes live.
"""

from __future__ import annotations

from pathlib import Path

from core.logs import get_logger
from dataflows.children import Failed, SpecTask
from dataflows.transcode.state import CollectState
from dataflows.transcode.tasks import MasterResult, MasterSpec, prestart, start

__all__ = ["MasterWrites"]

log = get_logger("vidflow.transcode")

WARM_NICE = 10  # the warm child's start-up gives way to the first fragment's encode


class MasterWrites:
    """At most one master-playlist child per video, polled from the collect step's timer."""

    def __init__(self) -> None:
        self.child: SpecTask[MasterResult] | None = None
        self.warm: SpecTask[MasterResult] | None = None  # waiting for the job's first write
        self.warmed_for = ""  # the job whose first write had (or has) a warm child

    @property
    def running(self) -> bool:
        """Whether a child is writing the playlist now, or waits warm to."""
        return self.child is not None or self.warm is not None

    def cancel(self) -> None:
        """Stop a write in flight (a deleted video must not get its playlist back)."""
        for task in (self.child, self.warm):
            if task is not None:
                task.cancel()
        self.child = self.warm = None

    def drop_warm(self) -> None:
        """Kill the warm child, if any (idempotent): no first write will come for it."""
        if self.warm is not None:
            self.warm.cancel()
            self.warm = None

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
        if plan is None or state.previewing:  # the job is over, or its end writes the master
            self.drop_warm()
            return
        workdir = workroot / plan.video_id / plan.job_id / "master"
        if not state.master_dirty:
            if self.child is None and self.warm is None and self.warmed_for != plan.job_id:
                self.warmed_for = plan.job_id
                self.warm = prestart(MasterSpec, workdir, "master", MasterResult, deadline,
                                     nice=WARM_NICE)  # fmt: skip
            return
        spec = MasterSpec(
            video_id=plan.video_id, job_id=plan.job_id, bucket=bucket,
            entries=list(state.entries.values()),
        )  # fmt: skip
        warm, self.warm = self.warm, None
        if warm is not None and warm.submit(spec):
            self.child = warm
        else:
            if warm is not None:
                warm.cancel()
            self.child = start(spec, workdir, "master", MasterResult, deadline)
        state.master_dirty = False
