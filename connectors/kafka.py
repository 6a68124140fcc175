"""Kafka through confluent-kafka: producers, consumers, topics and watermarks for vidflow events."""

from __future__ import annotations

from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from connectors.retry import RetryPolicy, retry_call, wait_until
from core.events import Event, encode
from core.settings import KafkaSettings

__all__ = [
    "KafkaDeliveryError",
    "client_config",
    "deliver",
    "end_offsets",
    "ensure_topics",
    "high_watermarks",
    "leader_not_ready",
    "make_admin",
    "make_consumer",
    "make_producer",
    "produce_event",
    "security_config",
    "wait_for_kafka",
    "wait_for_topics",
]


class KafkaDeliveryError(RuntimeError):
    """The broker did not acknowledge a message."""


def security_config(k: KafkaSettings) -> dict[str, str]:
    """How a client logs in to the broker, as librdkafka settings: the one place that turns
    ``KafkaSettings`` credentials into client configuration (Bytewax's source and sink take it
    as ``add_config``). Empty for a broker without authentication."""
    if k.security_protocol == "PLAINTEXT":
        return {}
    return {
        "security.protocol": k.security_protocol,
        "sasl.mechanism": k.sasl_mechanism,
        "sasl.username": k.username,
        "sasl.password": k.password.reveal(),
    }


def client_config(k: KafkaSettings) -> dict[str, Any]:
    """Where the brokers are and how to log in: the base of every client vidflow builds."""
    return {"bootstrap.servers": k.bootstrap, **security_config(k)}


def make_producer(k: KafkaSettings, **overrides: Any) -> Producer:
    """An idempotent producer: retries never duplicate or reorder within a partition."""
    config: dict[str, Any] = {
        **client_config(k),
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "compression.type": "lz4",
        "message.max.bytes": 8 * 1024 * 1024,
    }
    config.update(overrides)
    return Producer(config)


def make_consumer(k: KafkaSettings, group_id: str, **overrides: Any) -> Consumer:
    """A consumer in ``group_id`` that commits only when told to."""
    config: dict[str, Any] = {
        **client_config(k),
        "group.id": group_id,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "isolation.level": "read_committed",
    }
    config.update(overrides)
    return Consumer(config)


def make_admin(k: KafkaSettings, *, quiet: bool = False) -> AdminClient:
    """An admin client; ``quiet`` silences librdkafka's connection errors (for health probes)."""
    config = client_config(k)
    if quiet:
        config["log_level"] = 0
    return AdminClient(config)


def produce_event(producer: Producer, topic: str, event: Event) -> None:
    """Queue one event keyed by its partition key; the caller flushes."""
    producer.produce(topic, key=event.partition_key.encode(), value=encode(event))
    producer.poll(0)


def deliver(producer: Producer, topic: str, event: Event, timeout: float = 30.0) -> None:
    """Produce one event and wait until the broker acknowledged it; a refusal (an ACL, a
    message too large) raises :class:`KafkaDeliveryError` instead of passing unnoticed."""
    refused: list[Any] = []

    def on_delivery(error: Any, _message: Any) -> None:
        if error is not None:
            refused.append(error)

    producer.produce(
        topic, key=event.partition_key.encode(), value=encode(event), on_delivery=on_delivery
    )
    flush_or_raise(producer, timeout)
    if refused:
        raise KafkaDeliveryError(f"the broker refused the {event.type} event: {refused[0]}")


def flush_or_raise(producer: Producer, timeout: float = 30.0) -> None:
    """Wait for every queued message to be acknowledged, or say how many were not."""
    remaining = producer.flush(timeout)
    if remaining:
        raise KafkaDeliveryError(f"{remaining} message(s) not acknowledged within {timeout:.0f}s")


def ensure_topics(
    k: KafkaSettings,
    topics: list[str] | None = None,
    timeout: float = 30.0,
    *,
    admin: AdminClient | None = None,
) -> None:
    """Create the topics that do not exist yet (partitions and replication from settings).
    ``admin``: a client kept by the caller (each new one pays a connection and a login)."""
    admin = admin or make_admin(k)
    wanted = topics if topics is not None else k.topics()
    existing = set(admin.list_topics(timeout=timeout).topics)
    missing = [t for t in wanted if t not in existing]
    if missing:
        create_topics(k, missing, timeout, admin=admin)


def create_topics(
    k: KafkaSettings, topics: list[str], timeout: float = 30.0, *, admin: AdminClient
) -> None:
    """Create ``topics`` (one that exists already is fine) and wait until each is usable;
    for names known to be new, this skips listing every topic of the cluster."""
    new = [
        NewTopic(t, num_partitions=k.partitions, replication_factor=k.replication) for t in topics
    ]
    for future in admin.create_topics(new, operation_timeout=timeout).values():
        try:
            future.result()
        except KafkaException as exc:
            if exc.args[0].name() != "TOPIC_ALREADY_EXISTS":
                raise
    wait_for_topics(k, topics, timeout, admin=admin, first_delay=0.02)


def wait_for_topics(
    k: KafkaSettings,
    topics: list[str],
    timeout: float = 60.0,
    *,
    admin: AdminClient | None = None,
    first_delay: float = 0.2,
) -> None:
    """Block until every topic's partitions show in the metadata: a topic just created (or a
    broker just restarted) is briefly "unknown", and a reader built then fails at start-up.
    ``first_delay``: the first pause between looks (short where the topics were just made)."""
    admin = admin or make_admin(k, quiet=True)

    def probe() -> None:
        for topic in topics:
            metadata = admin.list_topics(topic, timeout=2.0).topics.get(topic)
            if metadata is None or metadata.error is not None or not metadata.partitions:
                why = metadata.error if metadata is not None else "absent"
                raise LookupError(f"topic {topic} is not ready ({why})")

    what = f"Kafka topics {', '.join(topics)} at {k.bootstrap}"
    wait_until(what, probe, timeout, first_delay=first_delay)


# What a partition answers while its leader is being settled: a topic just created (the
# metadata lists it before the broker leads it) or a broker just restarted. It passes.
_LEADER_SETTLING = frozenset(
    {
        KafkaError.NOT_LEADER_FOR_PARTITION,
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError.UNKNOWN_TOPIC_OR_PART,
    }
)


def leader_not_ready(exc: Exception) -> bool:
    """Whether ``exc`` says a partition's leader is still being settled (worth another try)."""
    if not isinstance(exc, KafkaException) or not exc.args:
        return False
    error = exc.args[0]
    return isinstance(error, KafkaError) and error.code() in _LEADER_SETTLING


def end_offsets(
    k: KafkaSettings, topics: list[str], timeout: float = 10.0, *, consumer: Consumer | None = None
) -> dict[str, dict[int, int]]:
    """The next offset to be written, per partition of each of ``topics`` that exists (one
    short-lived consumer, or ``consumer`` kept by the caller): the end a reader's lag is
    measured to. A partition whose leader is still being settled is asked again, within
    ``timeout``."""
    own = consumer is None
    consumer = consumer or make_consumer(k, group_id="vidflow-watermarks")
    policy = RetryPolicy(timeout, first_delay=0.05, max_delay=0.5)

    def high(topic: str, partition: int) -> int:
        where = TopicPartition(topic, partition)
        return int(
            retry_call(
                f"the end offset of {topic}[{partition}] at {k.bootstrap}",
                lambda: consumer.get_watermark_offsets(where, timeout=timeout)[1],
                policy,
                retry_on=leader_not_ready,
            )
        )

    try:
        # one topic per metadata request: a cluster's full listing can be thousands of topics
        listed = {t: consumer.list_topics(t, timeout=timeout).topics.get(t) for t in topics}
        return {
            topic: {partition: high(topic, partition) for partition in sorted(found.partitions)}
            for topic, found in listed.items()
            if found is not None and found.error is None
        }
    finally:
        if own:
            consumer.close()


def high_watermarks(k: KafkaSettings, topic: str, timeout: float = 10.0) -> dict[int, int]:
    """:func:`end_offsets` of one topic, which must exist."""
    ends = end_offsets(k, [topic], timeout)
    if topic not in ends:
        raise KafkaException(f"topic {topic} does not exist at {k.bootstrap}")
    return ends[topic]


def wait_for_kafka(k: KafkaSettings, timeout: float = 60.0) -> None:
    """Block until the broker answers a metadata request."""
    admin = make_admin(k, quiet=True)

    def probe() -> None:
        metadata = admin.list_topics(timeout=2.0)
        if not metadata.brokers:
            raise ConnectionError("no broker in metadata")

    wait_until(f"Kafka at {k.bootstrap}", probe, timeout)
