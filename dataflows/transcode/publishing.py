"""A unit's publishing child, started warm while FFmpeg still runs (issue 12).

Once FFmpeg is done the unit's rungs are uploaded by a Python child (``tasks.PublishSpec``); a
child started only then spends about a second loading Python and its imports before the first
byte goes up, on the path to every rung's ``rendition.completed`` and so to the job's end. So
a child is started ``WARM_AFTER`` seconds into the encode (not at its start, where it would take
CPU from the first fragment, the first playable moment), niced, waiting for its spec; when
FFmpeg is done it is handed the spec, or, if it is gone, a fresh child starts as before.
"""

from __future__ import annotations

import time
from pathlib import Path

from dataflows.children import Failed, Finished, SpecTask
from dataflows.transcode.tasks import PublishResult, PublishSpec, prestart, start

__all__ = ["UnitPublishing"]

WARM_AFTER = 3.0  # seconds into the encode before the child is started
WARM_NICE = 10  # its start-up gives way to the encodes; its uploads are I/O


class UnitPublishing:
    """The warm child and then the running one, polled from the ``encode`` step's timer."""

    def __init__(self) -> None:
        self.warm: SpecTask[PublishResult] | None = None
        self.task: SpecTask[PublishResult] | None = None
        self.started_at = time.monotonic()  # when the spec was handed over (publish_wall)

    def prepare(self, workdir: Path, encoding_for: float, deadline: float) -> None:
        """Start the warm child once the encode has run ``WARM_AFTER`` seconds."""
        if self.warm is None and self.task is None and encoding_for >= WARM_AFTER:
            self.warm = prestart(PublishSpec, workdir, "publish", PublishResult, deadline,
                                 nice=WARM_NICE)  # fmt: skip

    def start(self, spec: PublishSpec, workdir: Path, deadline: float) -> None:
        """Publish ``spec``: in the warm child when it is still there, else in a new one."""
        self.started_at = time.monotonic()
        warm, self.warm = self.warm, None
        if warm is not None and warm.submit(spec):
            self.task = warm
            return
        if warm is not None:
            warm.cancel()
        self.task = start(spec, workdir, "publish", PublishResult, deadline)

    def poll(self) -> Finished[PublishResult] | Failed | None:
        """The running child's outcome (None while it runs); forgotten once given."""
        assert self.task is not None
        outcome = self.task.poll()
        if outcome is not None:
            self.task = None
        return outcome

    def cancel(self) -> None:
        """Kill both children (idempotent): the unit stops, fails or starts again."""
        for task in (self.warm, self.task):
            if task is not None:
                task.cancel()
        self.warm = self.task = None
