"""A unit's publishing child, started warm while FFmpeg still runs (issue 12).

Once FFmpeg is done the unit's rungs are uploaded by a Python child (``tasks.PublishSpec``); a
child started only then spends about a second loading Python and its imports before the first
byte goes up, on the path to every rung's ``rendition.completed`` and so to the job's end. So
a child is started ``WARM_AFTER`` seconds into the encode (not at its start, where it would take
CPU from the first fragment, the first playable moment), niced, waiting for its spec; when
FFmpeg is done it is handed the spec, or, if it is gone, a fresh child starts as before.
"""

from __future__ import annotations

from pathlib import Path

from dataflows.transcode.tasks import PublishResult, PublishSpec
from dataflows.transcode.warm_task import WarmTask

__all__ = ["UnitPublishing"]

WARM_AFTER = 3.0  # seconds into the encode before the child is started
WARM_NICE = 10  # its start-up gives way to the encodes; its uploads are I/O


class UnitPublishing(WarmTask[PublishResult]):
    """The warm child and then the running one, polled from the ``encode`` step's timer
    (``started_at``: when the spec was handed over, publish_wall)."""

    def __init__(self) -> None:
        super().__init__("publish", PublishResult)

    def prepare(self, workdir: Path, encoding_for: float, deadline: float) -> None:
        """Start the warm child once the encode has run ``WARM_AFTER`` seconds."""
        if self.warm is None and self.task is None and encoding_for >= WARM_AFTER:
            self.warm_up(PublishSpec, workdir, deadline, WARM_NICE)
