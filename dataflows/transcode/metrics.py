"""Prometheus metrics of the transcode flow."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

__all__ = ["ENCODE_SECONDS", "JOBS", "RETRIES", "RUNNING", "SPEED", "UNITS"]

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
