"""The series the alerts read exist and move where the events happen.

``vidflow_dead_letters_total`` (alert VidflowDeadLetters) counts what a flow hands its sink for
``vidflow.dlq`` and nothing else; the job clock (alert VidflowJobTooLong) has one pair of series
per job being collected, gone once the job ends.
"""

from __future__ import annotations

import time

from prometheus_client import REGISTRY

from core import events as ev
from dataflows.kafka_io import Outbound, _to_sink
from dataflows.transcode import metrics


def _dead_letters() -> float:
    return REGISTRY.get_sample_value("vidflow_dead_letters_total") or 0.0


def test_a_dead_letter_sent_to_the_sink_is_counted_and_other_events_are_not() -> None:
    letter = ev.dead_letter(
        raw=b"{", key=b"v1", topic="vidflow.files", partition=0, offset=7, error="bad json"
    )
    other = ev.TranscodeCancel(id="c1", video_id="v1", job_id="j1", plan="p1")
    before = _dead_letters()
    _to_sink(Outbound("vidflow.jobs", other))
    assert _dead_letters() == before
    message = _to_sink(Outbound("vidflow.dlq", letter))
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
