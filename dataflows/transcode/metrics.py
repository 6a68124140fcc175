"""Prometheus metrics of the transcode flow."""

from __future__ import annotations

import contextlib
import time

from prometheus_client import Counter, Gauge, Histogram

__all__ = [
    "ENCODE_SECONDS",
    "JOBS",
    "JOB_SOURCE_SECONDS",
    "JOB_STARTED",
    "RETRIES",
    "RUNNING",
    "SPEED",
    "UNITS",
    "job_ended",
    "job_started",
]

UNITS = Counter("vidflow_transcode_units", "Encode units finished, by outcome.", ["outcome"])
JOBS = Counter("vidflow_transcode_jobs", "Jobs finished, by status.", ["status"])
RETRIES = Counter("vidflow_transcode_retries", "Encode units started again after a failure.")
ENCODE_SECONDS = Histogram(
    "vidflow_transcode_encode_seconds",
    "Wall time of an encode unit, by its highest rung.",
    ["rung"],
    buckets=(1, 2, 5, 10, 20, 40, 60, 120, 300, 600, 1200, 3600),
)
SPEED = Gauge("vidflow_transcode_speed", "Encode speed relative to real time (last reading).")
RUNNING = Gauge("vidflow_transcode_running_units", "FFmpeg processes running now.")
# One pair of series per job being collected, removed when it ends: the "job too long" alert
# compares its running time with its source's duration.
JOB_STARTED = Gauge(
    "vidflow_transcode_job_started_timestamp_seconds",
    "When this process took up the job (Unix time).",
    ["job_id"],
)
JOB_SOURCE_SECONDS = Gauge(
    "vidflow_transcode_job_source_seconds", "Duration of the job's source.", ["job_id"]
)


def job_started(job_id: str, source_seconds: float) -> None:
    """Start the clock of ``job_id`` (again after a restart: its time in this process)."""
    JOB_STARTED.labels(job_id=job_id).set(time.time())
    JOB_SOURCE_SECONDS.labels(job_id=job_id).set(source_seconds)


def job_ended(job_id: str) -> None:
    """Drop ``job_id``'s series, so finished jobs neither alert nor pile up."""
    for gauge in (JOB_STARTED, JOB_SOURCE_SECONDS):
        with contextlib.suppress(KeyError):  # never started here (a restart) or ended twice
            gauge.remove(job_id)
