"""Replaying the projected topics into the projection up to their current end (a rebuild)."""

from __future__ import annotations

from confluent_kafka import TopicPartition

from connectors.kafka import high_watermarks
from portal.projector import Projector

__all__ = ["replay_to_end"]


def replay_to_end(projector: Projector) -> int:
    """Consume every partition of the projected topics from its stored offset to the end it
    had when this started, then stop; returns how many messages changed something.

    Every partition is assigned explicitly (no group subscription): a running projector in the
    same group cannot take partitions away, and a partition already read to its end (stored
    offset at the high watermark) is simply done, not waited for.
    """
    settings = projector.settings
    ends = {
        (topic, partition): high
        for topic in projector.topics
        for partition, high in high_watermarks(settings.kafka, topic).items()
    }
    starts = projector._stored_offsets([TopicPartition(t, p) for t, p in sorted(ends)])
    positions = {(tp.topic, tp.partition): (tp.offset if tp.offset >= 0 else 0) for tp in starts}
    behind = {key for key, end in ends.items() if positions[key] < end}
    consumer = projector.consumer
    try:
        consumer.assign([tp for tp in starts if (tp.topic, tp.partition) in behind])
        while behind:
            messages = [m for m in consumer.consume(500, 1.0) if m.error() is None]
            if messages:
                projector.apply_batch(messages)
                for m in messages:
                    key = (str(m.topic()), int(m.partition() or 0))
                    positions[key] = max(positions[key], int(m.offset() or 0) + 1)
            # the consumer's own position also steps over offsets that hold no message
            # (transaction markers, compacted records)
            for tp in consumer.position([TopicPartition(t, p) for t, p in behind]):
                key = (tp.topic, tp.partition)
                positions[key] = max(positions[key], tp.offset)
            behind = {key for key in behind if positions[key] < ends[key]}
    finally:
        consumer.close()
    return projector.applied
