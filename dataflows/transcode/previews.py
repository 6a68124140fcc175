"""A job's previews child (poster, sprite, the final master playlist), started warm (issue 12).

The previews are the last step before ``job.completed``: a child started only once every unit
has landed spends its start-up (Python and its imports, a few tenths of a second) on the way to
the job's end. So once the job plays (a video track is live) a child is started, niced (its
start-up gives way to the encodes), waiting for its spec; when the units are in it is handed the
spec, or, if it is gone, a fresh child starts as before.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from dataflows.children import Failed, Finished, SpecTask
from dataflows.transcode.tasks import PreviewResult, PreviewSpec, prestart, start

__all__ = ["JobPreviews"]

WARM_NICE = 10  # as the other warm children: its start-up gives way to the encodes
NAME = "previews"  # the child's files in the job's collect directory


class JobPreviews:
    """The warm child, then the running one, polled from the ``collect`` step's timer."""

    def __init__(self) -> None:
        self.warm: SpecTask[PreviewResult] | None = None
        self.task: SpecTask[PreviewResult] | None = None
        self.warmed_for = ""  # the job a warm child was started for (once per job)
        self.started_at = time.monotonic()  # when the spec was handed over

    @property
    def running(self) -> bool:
        """Whether a child makes the previews now."""
        return self.task is not None

    def prepare(self, job_id: str, workdir: Path, deadline: float) -> None:
        """Start the warm child for ``job_id`` (once; idempotent)."""
        if self.warm is None and self.task is None and self.warmed_for != job_id:
            self.warmed_for = job_id
            shutil.rmtree(workdir, ignore_errors=True)  # an earlier attempt's files
            self.warm = prestart(PreviewSpec, workdir, NAME, PreviewResult, deadline,
                                 nice=WARM_NICE)  # fmt: skip

    def start(self, spec: PreviewSpec, workdir: Path, deadline: float) -> None:
        """Make the previews of ``spec``: in the warm child when it is there, else a new one."""
        self.started_at = time.monotonic()
        warm, self.warm = self.warm, None
        if warm is not None and warm.submit(spec):
            self.task = warm
            return
        if warm is not None:
            warm.cancel()
        shutil.rmtree(workdir, ignore_errors=True)
        self.task = start(spec, workdir, NAME, PreviewResult, deadline)

    def poll(self) -> Finished[PreviewResult] | Failed | None:
        """The running child's outcome (None while it runs); forgotten once given."""
        assert self.task is not None
        outcome = self.task.poll()
        if outcome is not None:
            self.task = None
        return outcome

    def drop_warm(self) -> None:
        """Kill the warm child, if any (idempotent): no spec will come for it."""
        if self.warm is not None:
            self.warm.cancel()
            self.warm = None

    def cancel(self) -> None:
        """Kill both children (idempotent): the job ends or is superseded."""
        self.drop_warm()
        if self.task is not None:
            self.task.cancel()
            self.task = None
