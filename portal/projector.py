"""The projector: ``vidflow.status`` and ``vidflow.dlq`` into PostgreSQL, exactly once.

It consumes in a consumer group but commits nothing to Kafka: the next offset of each partition
is stored in ``consumer_offsets`` in the same transaction as the rows it produced, and on every
assignment the consumer seeks to those offsets. A crash between the two is impossible, so each
message is applied once whatever happens.

No single message stops it. A message that does not decode, that the projection refuses
(:class:`portal.projection.Rejected`), or whose own values break a column (a database
``DataError``/``IntegrityError``) is rolled back to a savepoint, stored as a dead letter and
produced to ``vidflow.dlq`` (stage ``project``, deterministic id, the log's timestamp: a
rebuild makes the same row), and its offset is committed with the rest of the batch. A
database that cannot be reached is not the message's fault: the batch is kept and retried
until the database answers again, and nothing is dead-lettered for it.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)
from sqlalchemy import Connection, Engine, select, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects.postgresql import insert as pg_insert

from connectors.db import engine as make_engine
from connectors.kafka import KafkaDeliveryError, flush_or_raise, make_consumer, make_producer
from core import events as ev
from core.errors import public_reason
from core.layout import ObjectLayout
from core.logs import get_logger
from core.settings import Settings
from portal.models import PROJECTION_TABLES, ConsumerOffset
from portal.projection import Rejected, apply
from portal.projector_lag import measure_lag, publish_lag

__all__ = ["Projector", "drop_projection"]

log = get_logger("vidflow.projector")
SESSION_TIMEOUT_MS = 10_000  # a projector that died is replaced within seconds, not 45
STAGE = "project"
T = TypeVar("T")
RETRY_FIRST, RETRY_MAX = 0.5, 10.0  # seconds between attempts while the database is away
LAG_EVERY = 5.0  # seconds between measures of the projection's lag (Prometheus scrapes at 5 s)


def is_outage(exc: BaseException) -> bool:
    """Whether ``exc`` says the database (or Kafka) is away or broken as a whole, not that one
    message is bad: then the batch is retried, never dead-lettered.

    Connection loss is ``OperationalError``/``InterfaceError`` (or an invalidated connection);
    ``ProgrammingError``/``InternalError`` mean a schema or server problem every message would
    hit (a missing table). What one message's values cause is ``DataError`` (NUL in text, a
    number out of range, a string too long) or ``IntegrityError``: not an outage.
    """
    if isinstance(exc, sa_exc.DBAPIError):
        return exc.connection_invalidated or isinstance(
            exc,
            sa_exc.OperationalError
            | sa_exc.InterfaceError
            | sa_exc.ProgrammingError
            | sa_exc.InternalError
            | sa_exc.NotSupportedError,
        )
    # Kafka away, or its local queue full, while writing a dead letter: retried the same way
    return isinstance(exc, sa_exc.TimeoutError | KafkaDeliveryError | KafkaException | BufferError)


def _why(exc: BaseException) -> str:
    """The reason a dead letter shows: what the event did wrong, never the SQL or its values
    (a ``DBAPIError``'s text holds the statement and every parameter)."""
    if isinstance(exc, Rejected):
        return public_reason("not projected", str(exc))
    if isinstance(exc, sa_exc.DBAPIError):
        first = str(exc.orig).strip().splitlines()[:1]
        detail = f"{type(exc.orig).__name__}: {first[0]}" if first else type(exc.orig).__name__
        return public_reason("not projected: the database refused it", detail)
    return public_reason("not projected", exc)


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
        self.layout = ObjectLayout(settings.storage)
        self.applied = 0
        self.dead_lettered = 0
        self.retries = 0
        self.stop = threading.Event()
        self._producer: Producer | None = None  # made for the first dead letter

    def _stored(self) -> dict[tuple[str, int], int]:
        """The next offset of each partition the projection recorded with its rows."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(ConsumerOffset.topic, ConsumerOffset.partition, ConsumerOffset.next_offset)
            )
            return {(topic, part): offset for topic, part, offset in rows}

    def _stored_offsets(self, partitions: list[TopicPartition]) -> list[TopicPartition]:
        stored = self._stored()
        return [
            TopicPartition(
                p.topic, p.partition, stored.get((p.topic, p.partition), OFFSET_BEGINNING)
            )
            for p in partitions
        ]

    def report_lag(self) -> dict[tuple[str, int], int]:
        """Measure and publish how far the projection is behind (``portal/projector_lag.py``);
        a failure to measure is logged and skipped: a metric never stops the projector."""
        try:
            lag = measure_lag(self.consumer, self.topics, self._stored())
        except Exception as exc:  # noqa: BLE001 - the database or Kafka away: try next time
            log.info("projector lag not measured", error=repr(exc))
            return {}
        publish_lag(lag)
        return lag

    def on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        stored = self._retrying(lambda: self._stored_offsets(partitions), None)
        if stored is not None:
            consumer.assign(stored)

    def apply_batch(self, messages: Sequence[Message]) -> int:
        """Project ``messages`` and record where to continue; returns how many changed something.

        Raises only for an outage (:func:`is_outage`): then nothing of the batch is committed.
        """
        changed = 0
        letters: list[ev.DeadLetter] = []
        with self.engine.begin() as conn:
            next_offsets: dict[tuple[str, int], int] = {}
            for message in messages:
                # consumed messages always carry their position
                topic, partition = str(message.topic()), int(message.partition() or 0)
                offset = int(message.offset() or 0)
                applied, letter = self._apply_one(conn, message, topic, partition, offset)
                changed += applied
                if letter is not None:
                    changed += apply(conn, letter, self.layout)
                    if topic != self.settings.kafka.topic_dlq:  # never a loop through the DLQ
                        letters.append(letter)
                next_offsets[(topic, partition)] = offset + 1
            for (topic, partition), offset in next_offsets.items():
                conn.execute(
                    pg_insert(ConsumerOffset)
                    .values(topic=topic, partition=partition, next_offset=offset)
                    .on_conflict_do_update(
                        index_elements=["topic", "partition"], set_={"next_offset": offset}
                    )
                )
            self._publish(letters)  # before the commit: at least once on the topic
        self.applied += changed
        self.dead_lettered += len(letters)
        return changed

    def _apply_one(
        self, conn: Connection, message: Message, topic: str, partition: int, offset: int
    ) -> tuple[bool, ev.DeadLetter | None]:
        """Apply one message in a savepoint: whether it changed something, and the dead letter
        that stands for it when it cannot be applied (its changes are rolled back)."""
        expect = "dlq" if topic == self.settings.kafka.topic_dlq else "status"
        event = ev.try_decode(message.value(), expect)
        error: BaseException
        if isinstance(event, ev.DecodeError):
            error = event
        else:
            try:
                with conn.begin_nested():
                    return apply(conn, event, self.layout), None
            except Exception as exc:  # one message never stops the projector
                if is_outage(exc):
                    raise
                error = exc
        letter = ev.dead_letter(
            raw=message.value(), key=message.key(), topic=topic, partition=partition,
            offset=offset, error=_why(error), stage=STAGE,
            ts=message.timestamp()[1] / 1000,  # the log's time: rebuilds agree
        )  # fmt: skip
        log.warning(
            "message dead-lettered",
            video=getattr(event, "video_id", ""), topic=topic, partition=partition,
            offset=offset, error=repr(error),
        )  # fmt: skip
        return False, letter

    def _publish(self, letters: list[ev.DeadLetter]) -> None:
        if not letters:
            return
        if self._producer is None:
            self._producer = make_producer(self.settings.kafka)
        for letter in letters:
            self._producer.produce(
                self.settings.kafka.topic_dlq,
                key=letter.partition_key.encode(),
                value=ev.encode(letter),
            )
        flush_or_raise(self._producer)

    def apply_until_done(self, messages: Sequence[Message]) -> int:
        """:meth:`apply_batch`, retried while the database is away; 0 if :attr:`stop` is set
        first (nothing of the batch is committed, so the next start reads it again)."""
        return self._retrying(lambda: self.apply_batch(messages), 0)

    def _retrying(self, attempt: Callable[[], T], stopped: T) -> T:
        """``attempt()`` until it does not fail with an outage (growing pauses, logged), or
        ``stopped`` once :attr:`stop` is set: a message is never dead-lettered for an outage."""
        pause = RETRY_FIRST
        while True:
            try:
                return attempt()
            except Exception as exc:
                if not is_outage(exc):
                    raise
                self.retries += 1
                log.warning("database unavailable, retrying", error=repr(exc), pause=pause)
                if self.stop.wait(pause):
                    return stopped
                pause = min(pause * 2, RETRY_MAX)

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
        return self.apply_until_done(messages) if messages else 0

    def run(self, stop: threading.Event | None = None) -> None:
        """Project until ``stop`` is set (or SIGTERM/SIGINT in the main thread): the consumer
        leaves its group on the way out, so a successor gets the partitions at once."""
        stop = stop or self.stop
        self.stop = stop
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGTERM, signal.SIGINT):
                signal.signal(signum, lambda *_: stop.set())
        self.consumer.subscribe(self.topics, on_assign=self.on_assign)
        log.info("projecting", topics=self.topics)
        next_report = 0.0
        try:
            while not stop.is_set():
                self.poll_once()
                if time.monotonic() >= next_report:
                    self.report_lag()
                    next_report = time.monotonic() + LAG_EVERY
        finally:
            self.consumer.close()


def drop_projection(settings: Settings, engine: Engine | None = None) -> None:
    """Empty every projected table and the stored offsets, so the next run starts from zero."""
    target = engine or make_engine(settings.postgres)
    with target.begin() as conn:
        conn.execute(text(f"TRUNCATE {', '.join(PROJECTION_TABLES)}"))
