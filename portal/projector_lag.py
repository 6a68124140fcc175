"""How far the projection is behind its topics: a Prometheus gauge per partition.

The portal shows progress from the projection, so a projector that falls behind shows stale
progress while every flow looks healthy; the flows' own lag (``bytewax_kafka_consumer_lag``)
does not see it. What counts is what the projection recorded (the next offset stored in
``consumer_offsets`` in the same transaction as the rows), not the consumer's position in
memory: a batch read but not committed is not projected yet.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from confluent_kafka import Consumer, TopicPartition
from prometheus_client import Gauge

__all__ = ["LAG", "measure_lag", "publish_lag"]

LAG = Gauge(
    "vidflow_projector_lag_messages",
    "Messages of the status and dead-letter topics not yet in the portal's projection.",
    ["topic", "partition"],
)

Partition = tuple[str, int]


def measure_lag(
    consumer: Consumer,
    topics: Iterable[str],
    stored: Mapping[Partition, int],
    timeout: float = 5.0,
) -> dict[Partition, int]:
    """Per partition of ``topics``: its end offset minus the next offset the projection
    stored (a partition with none stored is behind by everything the log still holds)."""
    lag: dict[Partition, int] = {}
    for topic in topics:
        found = consumer.list_topics(topic, timeout=timeout).topics.get(topic)
        if found is None or found.error is not None:
            continue
        for partition in sorted(found.partitions):
            low, high = consumer.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=timeout
            )
            done = max(stored.get((topic, partition), low), low)  # retention may pass it
            lag[(topic, partition)] = max(high - done, 0)
    return lag


def publish_lag(lag: Mapping[Partition, int]) -> None:
    """Set the gauge of each measured partition."""
    for (topic, partition), behind in lag.items():
        LAG.labels(topic=topic, partition=str(partition)).set(behind)
