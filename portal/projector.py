"""The projector: ``vidflow.status`` and ``vidflow.dlq`` into PostgreSQL, exactly once.

It consumes in a consumer group but commits nothing to Kafka: the next offset of each partition
is stored in ``consumer_offsets`` in the same transaction as the rows it produced, and on every
assignment the consumer seeks to those offsets. A crash between the two is impossible, so each
message is applied once whatever happens.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Sequence

from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, TopicPartition
from sqlalchemy import Engine, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert

from connectors.db import engine as make_engine
from connectors.kafka import make_consumer
from core import events as ev
from core.logs import get_logger
from core.settings import Settings
from portal.models import PROJECTION_TABLES, ConsumerOffset
from portal.projection import apply

__all__ = ["Projector", "drop_projection"]

log = get_logger("vidflow.projector")
SESSION_TIMEOUT_MS = 10_000  # a projector that died is replaced within seconds, not 45


def group_for(settings: Settings) -> str:
    """One consumer group per projected topic, so separate deployments never share members."""
    return f"vidflow-projector.{settings.kafka.topic_status}"


class Projector:
    """Applies batches of messages, each batch in one transaction with its offsets."""

    def __init__(self, settings: Settings, engine: Engine | None = None) -> None:
        self.settings = settings
        self.engine = engine or make_engine(settings.postgres)
        self.topics = [settings.kafka.topic_status, settings.kafka.topic_dlq]
        self.consumer: Consumer = make_consumer(
            settings.kafka, group_for(settings), **{"session.timeout.ms": SESSION_TIMEOUT_MS}
        )
        self.applied = 0

    def _stored_offsets(self, partitions: list[TopicPartition]) -> list[TopicPartition]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(ConsumerOffset.topic, ConsumerOffset.partition, ConsumerOffset.next_offset)
            )
            stored = {(topic, part): offset for topic, part, offset in rows}
        return [
            TopicPartition(
                p.topic, p.partition, stored.get((p.topic, p.partition), OFFSET_BEGINNING)
            )
            for p in partitions
        ]

    def on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        consumer.assign(self._stored_offsets(partitions))

    def apply_batch(self, messages: Sequence[Message]) -> int:
        """Project ``messages`` and record where to continue; returns how many changed something."""
        changed = 0
        with self.engine.begin() as conn:
            next_offsets: dict[tuple[str, int], int] = {}
            for message in messages:
                # consumed messages always carry their position
                topic, partition = str(message.topic()), int(message.partition() or 0)
                offset = int(message.offset() or 0)
                expect = "dlq" if topic == self.settings.kafka.topic_dlq else "status"
                event = ev.try_decode(message.value(), expect)
                if isinstance(event, ev.DecodeError):
                    event = ev.dead_letter(
                        raw=message.value(), key=message.key(), topic=topic, partition=partition,
                        offset=offset, error=str(event), stage="projector",
                        ts=message.timestamp()[1] / 1000,  # the log's time: rebuilds agree
                    )  # fmt: skip
                changed += apply(conn, event)
                next_offsets[(topic, partition)] = offset + 1
            for (topic, partition), offset in next_offsets.items():
                conn.execute(
                    pg_insert(ConsumerOffset)
                    .values(topic=topic, partition=partition, next_offset=offset)
                    .on_conflict_do_update(
                        index_elements=["topic", "partition"], set_={"next_offset": offset}
                    )
                )
        self.applied += changed
        return changed

    def poll_once(self, timeout: float = 0.5) -> int:
        """One batch from Kafka into PostgreSQL: whatever has arrived, as soon as anything has.

        ``consume(500, timeout)`` would wait out the whole timeout for a trickle of events,
        which is what a person watching a progress bar sees as lag.
        """
        first = self.consumer.poll(timeout)
        if first is None:
            return 0
        arrived = [first, *self.consumer.consume(499, 0)]
        messages = [m for m in arrived if m.error() is None]
        return self.apply_batch(messages) if messages else 0

    def run(self, stop: threading.Event | None = None) -> None:
        """Project until ``stop`` is set (or SIGTERM/SIGINT in the main thread): the consumer
        leaves its group on the way out, so a successor gets the partitions at once."""
        stop = stop or threading.Event()
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGTERM, signal.SIGINT):
                signal.signal(signum, lambda *_: stop.set())
        self.consumer.subscribe(self.topics, on_assign=self.on_assign)
        log.info("projecting", topics=self.topics)
        try:
            while not stop.is_set():
                self.poll_once()
        finally:
            self.consumer.close()


def drop_projection(settings: Settings, engine: Engine | None = None) -> None:
    """Empty every projected table and the stored offsets, so the next run starts from zero."""
    target = engine or make_engine(settings.postgres)
    with target.begin() as conn:
        conn.execute(text(f"TRUNCATE {', '.join(PROJECTION_TABLES)}"))
