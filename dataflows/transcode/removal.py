"""Removing a deleted video's objects: one child at a time, tried again while it fails.

The collect step decides *when* (once the video's job is stopped); this says *how*: a child
process removes every object of the video (``tasks.PurgeSpec``), so a bucket listing of any
size never blocks a Bytewax worker, and a failed removal is tried again after ``RETRY``
seconds with the objects still in place.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from core.logs import get_logger
from dataflows.children import Failed, SpecTask
from dataflows.transcode.tasks import PurgeResult, PurgeSpec, start

__all__ = ["RETRY", "Removal"]

log = get_logger("vidflow.transcode")
RETRY = 30.0  # seconds between attempts to remove a deleted video's objects


class Removal:
    """The removal of one video's objects, polled from the collect step's timer."""

    def __init__(self) -> None:
        self.child: SpecTask[PurgeResult] | None = None
        self.retry_at = 0.0

    @property
    def running(self) -> bool:
        """Whether a child is removing objects now."""
        return self.child is not None

    def waiting(self) -> bool:
        """Whether the last attempt failed and the next one is not due yet."""
        return time.time() < self.retry_at

    def start(self, video_id: str, bucket: str, workdir: Path, deadline: float) -> None:
        """Start removing every object of ``video_id``."""
        spec = PurgeSpec(video_id=video_id, bucket=bucket)
        self.child = start(spec, workdir, "purge", PurgeResult, deadline)

    def poll(self, video_id: str, workdir: Path) -> list[str] | None:
        """The keys removed once the child is done; None while it runs or after it failed (it
        is then tried again from :meth:`start` once ``RETRY`` seconds have passed)."""
        if self.child is None:
            return None
        outcome = self.child.poll()
        if outcome is None:
            return None
        self.child = None
        if isinstance(outcome, Failed):
            self.retry_at = time.time() + RETRY
            log.warning("removing a video failed", video=video_id, reason=outcome.reason,
                        detail=outcome.detail)  # fmt: skip
            return None
        shutil.rmtree(workdir, ignore_errors=True)
        return list(outcome.result.removed)
