"""Prometheus metrics of the ingest flow (served by ``connectors.metrics``)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

__all__ = ["BYTES_READ", "CHUNKS", "CHUNK_SECONDS", "DEDUP_BYTES_SAVED", "DEDUP_FILES", "STREAMS"]

BYTES_READ = Counter("vidflow_ingest_bytes_read", "Bytes read from watched files and uploads.")
CHUNKS = Counter(
    "vidflow_ingest_chunks", "Chunks cut, by whether they were already stored.", ["result"]
)
DEDUP_FILES = Counter(
    "vidflow_ingest_dedup_files", "Files whose SHA-256 an existing source had: no bytes stored."
)
DEDUP_BYTES_SAVED = Counter(
    "vidflow_ingest_dedup_bytes_saved", "Bytes not stored because an identical source existed."
)
STREAMS = Counter("vidflow_ingest_streams_completed", "Streams finished, by outcome.", ["outcome"])
CHUNK_SECONDS = Histogram(
    "vidflow_ingest_chunk_seconds",
    "Time to read, hash and store one chunk.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
