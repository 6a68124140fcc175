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
from bytewax.connectors.kafka import KafkaError, KafkaSink, KafkaSinkMessage, KafkaSource
from bytewax.dataflow import Dataflow, Stream, operator

from connectors.kafka import security_config, wait_for_kafka, wait_for_topics
from core.events import AnyEvent, DeadLetter, DecodeError, Event, dead_letter, encode, try_decode
from core.settings import KafkaSettings
from dataflows.flow_metrics import DEAD_LETTERS

START_TIMEOUT = 120.0  # seconds a starting flow waits for Kafka and its topics

__all__ = ["Inbound", "Outbound", "ReadResult", "read_events", "write_events", "write_results"]


@dataclass(frozen=True)
class Inbound:
    """A decoded event and its position in the log (positions make derived ids deterministic)."""

    event: AnyEvent
    topic: str
    partition: int
    offset: int


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
    return Inbound(decoded, message.topic or "", message.partition or 0, message.offset or 0)


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
    wait_for_kafka(kafka, timeout=START_TIMEOUT)
    wait_for_topics(kafka, topics, timeout=START_TIMEOUT)
    source = KafkaSource(
        kafka.bootstrap.split(","), topics, tail=True, raise_on_errors=False,
        batch_size=batch_size, add_config=security_config(kafka),
    )  # fmt: skip
    raw = op.input("input", flow, source)
    decoded = op.map("decode", raw, lambda m: _decode(m, expect))
    split = op.branch("split", decoded, lambda item: isinstance(item, Inbound))
    return ReadResult(oks=split.trues, errs=split.falses)  # type: ignore[arg-type]


def _to_sink(item: Outbound) -> KafkaSinkMessage[bytes, bytes]:
    if isinstance(item.event, DeadLetter):
        DEAD_LETTERS.inc()
    return KafkaSinkMessage(
        key=item.event.partition_key.encode(), value=encode(item.event), topic=item.topic
    )


@operator
def write_events(step_id: str, up: Stream[Outbound], kafka: KafkaSettings) -> None:
    """Produce each event to its topic, keyed by its partition key (idempotent producer)."""
    messages = op.map("encode", up, _to_sink)
    sink = KafkaSink(
        kafka.bootstrap.split(","), None,
        add_config={**security_config(kafka), "enable.idempotence": "true"},
    )  # fmt: skip
    op.output("output", messages, sink)


@operator
def write_results(
    step_id: str, produced: Stream[Outbound], errs: Stream[DeadLetter], kafka: KafkaSettings
) -> None:
    """A flow's events and its input's dead letters (to ``vidflow.dlq``), through one sink."""
    dead = op.map("to_dlq", errs, lambda letter: Outbound(kafka.topic_dlq, letter))
    write_events("write", op.merge("merge", produced, dead), kafka)
