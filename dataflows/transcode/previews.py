"""A job's previews child (poster, sprite, the final master playlist), started warm (issue 12).

The previews are the last step before ``job.completed``: a child started only once every unit
has landed spends its start-up (Python and its imports, a few tenths of a second) on the way to
the job's end. So once the job plays (a video track is live) a child is started, niced (its
start-up gives way to the encodes), waiting for its spec; when the units are in it is handed the
spec, or, if it is gone, a fresh child starts as before.
"""

from __future__ import annotations

from pathlib import Path

from dataflows.transcode.tasks import PreviewResult, PreviewSpec
from dataflows.transcode.warm_task import WarmTask

__all__ = ["JobPreviews"]

WARM_NICE = 10  # as the other warm children: its start-up gives way to the encodes
NAME = "previews"  # the child's files in the job's collect directory


class JobPreviews(WarmTask[PreviewResult]):
    """The warm child, then the running one, polled from the ``collect`` step's timer."""

    def __init__(self) -> None:
        super().__init__(NAME, PreviewResult, fresh_dir=True)
        self.warmed_for = ""  # the job a warm child was started for (once per job)

    @property
    def running(self) -> bool:
        """Whether a child makes the previews now."""
        return self.task is not None

    def prepare(self, job_id: str, workdir: Path, deadline: float) -> None:
        """Start the warm child for ``job_id`` (once; idempotent)."""
        if self.warm is None and self.task is None and self.warmed_for != job_id:
            self.warmed_for = job_id
            self.warm_up(PreviewSpec, workdir, deadline, WARM_NICE)
