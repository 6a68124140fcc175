"""Every in-process flow test runs on one worker and on two (as Bytewax's own tests do)."""

from __future__ import annotations

import pytest


@pytest.fixture(params=[1, 2], ids=["1-worker", "2-workers"])
def workers(request: pytest.FixtureRequest) -> int:
    """How many worker threads the flow runs on."""
    workers: int = request.param
    return workers
