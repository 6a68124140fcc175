"""Failure classification and the deadline of child tasks (real child processes, no mocks)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from dataflows.transcode.runner import ChildTask, classify_failure


@pytest.mark.parametrize(
    "stderr",
    [
        "Error opening input: Connection refused",
        "http://127.0.0.1:19000/vidflow/sources/x/source: Connection refused\n"
        "Error opening input file http://127.0.0.1:19000/vidflow/sources/x/source.",
        "[tcp @ 0x55] Connection to tcp://127.0.0.1:19000 failed: Connection refused\n"
        "Error opening input files: Connection refused",
        "Error opening input: Connection timed out",
        "[http @ 0x1] HTTP error 503 Service Unavailable\nError opening input: Server returned 5XX",
        "Error in the pull function: Connection reset by peer\nInvalid argument",
        "av_interleaved_write_frame(): Input/output error",
    ],
)
def test_network_errors_are_transient(stderr: str) -> None:
    assert classify_failure(1, stderr, False) == "transient"


@pytest.mark.parametrize(
    "stderr",
    [
        "source: Invalid data found when processing input",
        "[mov,mp4 @ 0x1] moov atom not found\nError opening input: Invalid data found",
        "Error opening input: Server returned 404 Not Found",
        "Error opening input: Server returned 403 Forbidden (access denied)",
        "Could not find codec parameters for stream 0",
    ],
)
def test_undecodable_inputs_are_deterministic(stderr: str) -> None:
    assert classify_failure(1, stderr, False) == "deterministic"


def test_killed_is_always_transient() -> None:
    assert classify_failure(-9, "Invalid data found when processing input", True) == "transient"


def test_a_child_past_its_deadline_is_overdue(tmp_path: Path) -> None:
    child = ChildTask([sys.executable, "-c", "import time; time.sleep(30)"], tmp_path / "l", 0.3)
    try:
        assert not child.overdue()
        time.sleep(0.5)
        assert child.overdue() and child.exit_code() is None
    finally:
        child.kill()
    assert child.exit_code() is not None and not child.overdue()


def test_a_finished_child_is_never_overdue(tmp_path: Path) -> None:
    child = ChildTask([sys.executable, "-c", "print('ok')"], tmp_path / "log", 0.1)
    child.process.wait(10)
    time.sleep(0.2)
    assert child.exit_code() == 0 and not child.overdue()
    assert child.output_tail() == "ok"
