"""Failure classification of FFmpeg runs (the child processes themselves: test_children.py)."""

from __future__ import annotations

import pytest

from dataflows.transcode.runner import classify_failure


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
