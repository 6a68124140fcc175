"""A child started warm and handed its spec later, then polled: what a unit's publishing and
a job's previews share (each decides for itself when to start the warm one)."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Generic, TypeVar

from dataflows.children import Failed, Finished, SpecTask
from dataflows.transcode.tasks import Spec, prestart, start

__all__ = ["WarmTask"]

R = TypeVar("R")


class WarmTask(Generic[R]):
    """The warm child (waiting for its spec) and then the running one, files ``workdir/name.*``."""

    def __init__(self, name: str, result: type[R], *, fresh_dir: bool = False) -> None:
        self.name = name
        self.result = result
        self.fresh_dir = fresh_dir  # an earlier attempt's files are removed before a start
        self.warm: SpecTask[R] | None = None
        self.task: SpecTask[R] | None = None
        self.started_at = time.monotonic()  # when the spec was handed over

    def warm_up(self, kind: type[Spec], workdir: Path, deadline: float, nice: int) -> None:
        """Start the warm child for a spec of ``kind`` (the caller checks it is not there)."""
        if self.fresh_dir:
            shutil.rmtree(workdir, ignore_errors=True)
        self.warm = prestart(kind, workdir, self.name, self.result, deadline, nice=nice)

    def start(self, spec: Spec, workdir: Path, deadline: float) -> None:
        """Run ``spec``: in the warm child when it is still there, else in a new one."""
        self.started_at = time.monotonic()
        warm, self.warm = self.warm, None
        if warm is not None and warm.submit(spec):
            self.task = warm
            return
        if warm is not None:
            warm.cancel()
        if self.fresh_dir:
            shutil.rmtree(workdir, ignore_errors=True)
        self.task = start(spec, workdir, self.name, self.result, deadline)

    def poll(self) -> Finished[R] | Failed | None:
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
        """Kill both children (idempotent)."""
        self.drop_warm()
        if self.task is not None:
            self.task.cancel()
            self.task = None
