"""A tiny child for tests/unit/test_children.py: ``python -m tests.unit.children_task SPEC RESULT``
echoes, sleeps or fails as its spec says, through :func:`dataflows.children.serve`."""

from __future__ import annotations

import os
import sys
import time

from dataflows.children import serve
from tests.unit.test_children import Echo, Job


def _run(job: Job) -> Echo:
    time.sleep(job.sleep)
    if job.fail == "exit":
        os._exit(3)  # dies without a word (no result, no reason)
    if job.fail:
        raise RuntimeError(job.fail)
    return Echo(job.text)


if __name__ == "__main__":
    sys.exit(serve(sys.argv[1:], Job, _run, lambda job: "echo failed"))
