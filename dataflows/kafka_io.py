"""Kafka in and out of Bytewax flows, speaking the event contract.

Shaped like ``bytewax.connectors.kafka.operators``: reading splits into ``oks`` (decoded events,
with where they came from) and ``errs`` (dead letters with the raw bytes and the reason), so a
malformed message becomes a ``vidflow.dlq`` record and never stops a flow.

Bytewax's ``KafkaSource`` keeps its offsets in the recovery store, not in a consumer group; it
exports ``bytewax_kafka_consumer_lag`` (per topic and partition) to the process registry, which
``connectors.metrics.start_metrics_server`` serves.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import bytewax.operators as op
from bytewax.connectors.kafka import KafkaError, KafkaSink, KafkaSinkMessage
from bytewax.dataflow import Dataflow, Stream, operator
from bytewax.inputs import Source
from bytewax.outputs import Sink

from connectors.kafka import security_config, wait_for_kafka, wait_for_topics
from core.events import (
    AnyEvent,
    DeadLetter,
    DecodeError,
    Event,
    dead_letter,
    encode,
    refused,
    try_decode,
)
from core.settings import KafkaSettings
from dataflows.flow_metrics import DEAD_LETTERS
from dataflows.resting_source import RestingKafkaSource

START_TIMEOUT = 120.0  # seconds a starting flow waits for Kafka and its topics

__all__ = [
    "Inbound",
    "Outbound",
    "ReadResult",
    "SinkMessage",
    "kafka_sink",
    "kafka_source",
    "read_events",
    "read_source",
    "write_events",
    "write_results",
    "write_sink",
]


@dataclass(frozen=True)
class Inbound:
    """A decoded event and its position in the log (positions make derived ids deterministic)."""

    event: AnyEvent
    topic: str
    partition: int
    offset: int
    raw: bytes = b""  # the message as it came, so a later refusal dead-letters it unchanged


@dataclass(frozen=True)
class Outbound:
    """An event bound for a topic."""

    topic: str
    event: Event


@dataclass(frozen=True)
class ReadResult:
    """The two streams a read produces."""

    oks: Stream[Inbound]
    errs: Stream[DeadLetter]


def _decode(message: Any, expect: str | Mapping[str, str] | None) -> Inbound | DeadLetter:
    if isinstance(message, KafkaError):
        source = message.msg
        return dead_letter(
            raw=source.value, key=source.key, topic=source.topic or "", stage="consume",
            partition=source.partition or 0, offset=source.offset or 0, error=str(message.err),
        )  # fmt: skip
    family = expect.get(message.topic or "") if isinstance(expect, Mapping) else expect
    decoded = try_decode(message.value, family)
    if isinstance(decoded, DecodeError):
        return dead_letter(
            raw=message.value, key=message.key, topic=message.topic or "",
            partition=message.partition or 0, offset=message.offset or 0, error=str(decoded),
        )  # fmt: skip
    return Inbound(
        decoded, message.topic or "", message.partition or 0, message.offset or 0,
        raw=bytes(message.value or b""),
    )  # fmt: skip


@operator
def read_events(
    step_id: str,
    flow: Dataflow,
    kafka: KafkaSettings,
    topics: list[str],
    expect: str | Mapping[str, str] | None = None,
    batch_size: int = 100,
) -> ReadResult:
    """Read ``topics`` from the beginning (or the recovered position), decoding every message.

    ``expect`` is the event family every message must belong to, or one per topic (a topic
    missing from the mapping takes any family); a message of another family is a dead letter.
    The broker may still be starting, or a topic just created not yet in its metadata: both are
    waited for here, before the source lists its partitions (which would fail the flow).
    """
    raw = op.input("input", flow, kafka_source(kafka, topics, batch_size))
    decoded = op.map("decode", raw, lambda m: _decode(m, expect))
    split = op.branch("split", decoded, lambda item: isinstance(item, Inbound))
    return ReadResult(oks=split.trues, errs=split.falses)  # type: ignore[arg-type]


def _to_sink(item: Outbound, dlq: str) -> KafkaSinkMessage[bytes, bytes]:
    """The message for ``item``; an event the contract refuses goes to ``dlq`` instead, so the
    flow does not fail on the same input at every restart. Dead letters are counted (alerts)."""
    try:
        message = KafkaSinkMessage(
            key=item.event.partition_key.encode(), value=encode(item.event), topic=item.topic
        )
    except DecodeError as exc:
        letter = refused(item.event, item.topic, exc)
        DEAD_LETTERS.inc()
        return KafkaSinkMessage(key=letter.partition_key.encode(), value=encode(letter), topic=dlq)
    if isinstance(item.event, DeadLetter):
        DEAD_LETTERS.inc()
    return message


@operator
def write_events(step_id: str, up: Stream[Outbound], kafka: KafkaSettings) -> None:
    """Produce each event to its topic, keyed by its partition key (idempotent producer)."""
    messages = op.map("encode", up, lambda item: _to_sink(item, kafka.topic_dlq))
    op.output("output", messages, kafka_sink(kafka))


@operator
def write_results(
    step_id: str, produced: Stream[Outbound], errs: Stream[DeadLetter], kafka: KafkaSettings
) -> None:
    """A flow's events and its input's dead letters (to ``vidflow.dlq``), through one sink."""
    dead = op.map("to_dlq", errs, lambda letter: Outbound(kafka.topic_dlq, letter))
    write_events("write", op.merge("merge", produced, dead), kafka)


# ---------------------------------------------------------------- injectable source and sink
# The flows build their graph from a given source and sink (Kafka in production, Bytewax's
# TestingSource / TestingSink in tests), so building a graph touches nothing outside the process.
# Step ids match read_events / write_results, so a recovery store keeps its input offsets.

SinkMessage = KafkaSinkMessage[Any, Any]  # what the sink of a flow gets: encoded events


def kafka_source(
    kafka: KafkaSettings, topics: list[str], batch_size: int = 100
) -> RestingKafkaSource:
    """The Kafka source of ``topics``, once the broker and the topics answer (waits for both:
    listing the partitions of a topic the broker does not know yet fails the flow); a quiet
    partition rests between polls (``dataflows.resting_source``)."""
    wait_for_kafka(kafka, timeout=START_TIMEOUT)
    wait_for_topics(kafka, topics, timeout=START_TIMEOUT)
    return RestingKafkaSource(
        kafka.bootstrap.split(","), topics, tail=True, raise_on_errors=False,
        batch_size=batch_size, add_config=security_config(kafka),
    )  # fmt: skip


def kafka_sink(kafka: KafkaSettings) -> KafkaSink:
    """The Kafka sink of every flow (an idempotent producer; each message names its topic)."""
    return KafkaSink(
        kafka.bootstrap.split(","), None,
        add_config={**security_config(kafka), "enable.idempotence": "true"},
    )  # fmt: skip


@operator
def read_source(
    step_id: str,
    flow: Dataflow,
    source: Source[Any],
    expect: str | Mapping[str, str] | None = None,
) -> ReadResult:
    """Like :func:`read_events`, from ``source`` (Kafka messages or errors, as KafkaSource
    emits them with ``raise_on_errors=False``), which is given, not built here."""
    raw = op.input("input", flow, source)
    decoded = op.map("decode", raw, lambda m: _decode(m, expect))
    split = op.branch("split", decoded, lambda item: isinstance(item, Inbound))
    return ReadResult(oks=split.trues, errs=split.falses)  # type: ignore[arg-type]


@operator
def write_sink(
    step_id: str,
    produced: Stream[Outbound],
    errs: Stream[DeadLetter],
    dlq_topic: str,
    sink: Sink[SinkMessage],
) -> None:
    """Like :func:`write_results`, into ``sink``: a flow's events and its input's dead letters
    (to ``dlq_topic``), each encoded and keyed by its partition key."""
    dead = op.map("to_dlq", errs, lambda letter: Outbound(dlq_topic, letter))
    merged = op.merge("merge", produced, dead)
    op.output("output", op.map("encode", merged, lambda item: _to_sink(item, dlq_topic)), sink)
