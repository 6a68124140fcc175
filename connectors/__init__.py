"""Thin typed adapters to the outside world: Kafka, S3 storage, PostgreSQL, FFmpeg, metrics."""
