"""The series the alerts read exist and move where the events happen.

``vidflow_dead_letters_total`` (alert VidflowDeadLetters) counts what a flow hands its sink for
``vidflow.dlq`` and nothing else; the job clock (alert VidflowJobTooLong) has one pair of series
per job being collected, gone once the job ends.
"""

from __future__ import annotations

import time
from pathlib import Path

from prometheus_client import REGISTRY

from core import events as ev
from dataflows.kafka_io import Outbound, _to_sink
from dataflows.transcode import metrics
from dataflows.transcode.collect import CollectLogic
from dataflows.transcode.messages import JobClosed, JobOpened, UnitStopped
from dataflows.transcode.plan import PlanLogic
from tests.unit.test_transcode_logic import context, request


def _dead_letters() -> float:
    return REGISTRY.get_sample_value("vidflow_dead_letters_total") or 0.0


def test_a_dead_letter_sent_to_the_sink_is_counted_and_other_events_are_not() -> None:
    letter = ev.dead_letter(
        raw=b"{", key=b"v1", topic="vidflow.files", partition=0, offset=7, error="bad json"
    )
    other = ev.TranscodeCancel(id="c1", video_id="v1", job_id="j1", plan="p1")
    before = _dead_letters()
    _to_sink(Outbound("vidflow.jobs", other), "vidflow.dlq")
    assert _dead_letters() == before
    message = _to_sink(Outbound("vidflow.dlq", letter), "vidflow.dlq")
    assert message.topic == "vidflow.dlq"
    assert _dead_letters() == before + 1


def test_a_job_clock_starts_with_its_source_duration_and_goes_when_it_ends() -> None:
    started = time.time()
    metrics.job_started("job-clock", 42.5)
    stamp = REGISTRY.get_sample_value(
        "vidflow_transcode_job_started_timestamp_seconds", {"job_id": "job-clock"}
    )
    assert stamp is not None and started <= stamp <= time.time()
    source = REGISTRY.get_sample_value(
        "vidflow_transcode_job_source_seconds", {"job_id": "job-clock"}
    )
    assert source == 42.5
    metrics.job_ended("job-clock")
    metrics.job_ended("job-clock")  # ending twice (a cancel after a failure) is harmless
    for name in ("vidflow_transcode_job_started_timestamp_seconds",
                 "vidflow_transcode_job_source_seconds"):  # fmt: skip
        assert REGISTRY.get_sample_value(name, {"job_id": "job-clock"}) is None


def test_collect_starts_the_clock_when_it_takes_up_a_job_and_stops_it_at_the_end(
    tmp_path: Path,
) -> None:
    ctx = context(tmp_path)
    planned, _ = PlanLogic(ctx, None).on_item(request(video="v-clock", job="j-clock"))
    opened = next(item for item in planned if isinstance(item, JobOpened))
    logic = CollectLogic(ctx, None)
    logic.on_item(opened)
    assert (
        REGISTRY.get_sample_value("vidflow_transcode_job_source_seconds", {"job_id": "j-clock"})
        == 2.0
    )  # the probe's duration of request()
    logic.on_item(JobClosed("v-clock", "j-clock", "cancelled on request"))
    logic.on_item(UnitStopped("v-clock", "j-clock", opened.plan.units[0]))
    assert (
        REGISTRY.get_sample_value(
            "vidflow_transcode_job_started_timestamp_seconds", {"job_id": "j-clock"}
        )
        is None
    )
