"""Failure reasons of the transcode side are short, one line and public (issue 9, obs. 7): no
presigned URL from FFmpeg's stderr, no traceback or local path from a child task; the detail is
in the log. Real FFmpeg, real child processes; no service is needed."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from connectors.ffmpeg import ProbeError, probe, stderr_reason
from core import events as ev
from core.errors import is_public
from dataflows.children import Failed
from dataflows.kafka_io import Outbound
from dataflows.transcode.encode import EncodeLogic
from dataflows.transcode.ladder import PlannedRendition
from dataflows.transcode.messages import UnitOutcome, UnitTask
from dataflows.transcode.plan import PlanLogic
from dataflows.transcode.tasks import PublishResult, PublishSpec, start
from tests.unit.test_transcode_logic import context, request

PRESIGNED = (
    "http://127.0.0.1:9/vidflow/sources/v1/source?X-Amz-Algorithm=AWS4-HMAC-SHA256"
    "&X-Amz-Credential=vidflow%2F20261130%2Fus-east-1&X-Amz-Signature=0123abcd"
)


def test_the_last_stderr_line_without_the_url_is_the_reason() -> None:
    stderr = (
        "[mov,mp4,m4a,3gp,3g2,mj2 @ 0x55f8d3058a00] moov atom not found\n"
        f"[in#0 @ 0x55f8d3058b00] Error opening input: Invalid data found\n"
        f"{PRESIGNED}: Invalid data found when processing input\n"
    )
    reason = stderr_reason(stderr, "FFmpeg failed")
    assert reason.endswith("Invalid data found when processing input") and "0x55" not in reason
    assert is_public(reason) and "X-Amz" not in reason and "\n" not in reason
    assert stderr_reason("  \n", "FFmpeg failed") == "FFmpeg failed"


def test_ffprobe_of_a_presigned_url_fails_without_the_url() -> None:
    with pytest.raises(ProbeError) as caught:
        probe(PRESIGNED, timeout=20)
    text = str(caught.value)
    assert text.startswith("not a readable video") and is_public(text), text
    assert "X-Amz" not in text and "\n" not in text


def test_a_failed_child_task_reports_one_public_line(tmp_path: Path) -> None:
    workdir = tmp_path / "work"  # the encode's playlist and MP4 are missing: publishing fails
    workdir.mkdir()
    planned = PlannedRendition(
        label=240, width=426, height=240, video_kbps=500, audio_kbps=128, audio=True
    )
    spec = PublishSpec(video_id="v1", job_id="j1", bucket="vidflow", workdir=str(workdir),
                       planned=[planned])  # fmt: skip
    task = start(spec, workdir, "publish", PublishResult, deadline=60)
    deadline = time.monotonic() + 60
    while (outcome := task.poll()) is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert isinstance(outcome, Failed) and not outcome.hung
    # the detail, for the log: the traceback's end (its frames and the error)
    assert 'File "' in outcome.detail and "FileNotFoundError" in outcome.detail
    reason = outcome.reason
    assert reason.startswith("publishing failed") and "No such file" in reason, reason
    assert is_public(reason) and "\n" not in reason and str(tmp_path) not in reason


def test_an_encode_failure_is_public_in_every_event(tmp_path: Path) -> None:
    blocker = tmp_path / "home"
    blocker.write_text("a file where the work directory should be")  # mkdir fails, naming it
    ctx = context(blocker, retries=1, retry_backoff=0.0)
    planned, _ = PlanLogic(ctx, None).on_item(request())
    task = next(item for item in planned if isinstance(item, UnitTask))
    out, _ = EncodeLogic(ctx, None).on_item(task)
    failures = [o.event for o in out if isinstance(o, Outbound)]
    outcome = next(o for o in out if isinstance(o, UnitOutcome))
    assert failures and all(isinstance(e, ev.RenditionFailed) for e in failures)
    for text in [e.error for e in failures if isinstance(e, ev.RenditionFailed)] + [outcome.error]:
        assert "could not start FFmpeg" in text and is_public(text), text
        assert str(tmp_path) not in text and "\n" not in text
