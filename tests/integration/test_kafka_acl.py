"""Kafka as a trust boundary, on the real broker of the stack: logins are required and right,
and each principal may do what its component needs and nothing else.

The rules under test are the stack's own (``vidflow.stack.acls.grants``), made for this test's
isolated topics: the same function the stack applies to the configured topic names.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import msgspec
import pytest
from confluent_kafka import OFFSET_BEGINNING, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin._acl import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
)
from confluent_kafka.admin._resource import ResourcePatternType, ResourceType
from confluent_kafka.cimpl import NewTopic

from connectors.kafka import (
    client_config,
    end_offsets,
    ensure_topics,
    flush_or_raise,
    make_admin,
    make_consumer,
    make_producer,
)
from core import events as ev
from core.settings import KafkaSettings, Secret, Settings
from tests.flows import FlowProcess, TopicReader
from vidflow.stack.acls import BYTEWAX_GROUP, binding, ensure_acls, grants, projector_group
from vidflow.stack.credentials import as_principal, load_credentials

pytestmark = pytest.mark.integration

REFUSED = "TOPIC_AUTHORIZATION_FAILED"


def login(settings: Settings, principal: str, password: str | None = None) -> KafkaSettings:
    """``settings.kafka`` logged in as one of the stack's principals (or with ``password``)."""
    stored = load_credentials(Path(settings.home))
    assert stored is not None, f"the stack at {settings.home} made no Kafka logins"
    secret = Secret(password) if password is not None else stored[principal]
    return as_principal(settings.kafka, principal, secret)


@pytest.fixture
def guarded(isolated_settings: Settings) -> Iterator[Settings]:
    """Isolated topics under the stack's rules; the rules are removed again afterwards."""
    k = isolated_settings.kafka
    admin = make_admin(k)
    rules = grants(k)
    ensure_acls(admin, rules)
    yield isolated_settings
    # only this test's own rules go: the group rules not named after its topics are the stack's
    own = [r for r in rules if r.resource == "topic" or r.name == projector_group(k)]
    filters = [_exact(binding(rule)) for rule in own]
    for future in admin.delete_acls(filters).values():
        future.result()


def _exact(made: AclBinding) -> AclBindingFilter:
    return AclBindingFilter(
        made.restype, made.name, made.resource_pattern_type, made.principal, made.host,
        made.operation, made.permission_type,
    )  # fmt: skip


def write(k: KafkaSettings, topic: str, timeout_ms: int = 15000) -> str | None:
    """None when the broker took one message for ``topic``, else the error's name."""
    outcome: dict[str, Any] = {}
    producer = make_producer(k, **{"message.timeout.ms": timeout_ms})
    producer.produce(
        topic, key=b"probe", value=b"probe", on_delivery=lambda err, _: outcome.update(err=err)
    )
    producer.flush(timeout_ms / 1000 + 5)
    if "err" not in outcome:
        return "undelivered"
    return None if outcome["err"] is None else str(outcome["err"].name())


# After a refusal, how long a read still waits for a message (a permitted read gets its first
# at once): a group refusal or a refused topic lookup is not a refused fetch, so it does not end
# the read by itself, but waiting the whole timeout after it shows no more.
AFTER_REFUSAL = 2.0


def read(k: KafkaSettings, topic: str, group: str = BYTEWAX_GROUP, timeout: float = 20.0) -> str:
    """``"read"`` once a message of ``topic`` arrives, else the names of the errors met
    (partitions assigned from the beginning in a group never joined: how the flows read).

    The topic's metadata is asked first: a principal that may not even describe the topic is
    told so there (librdkafka's fetcher then only keeps waiting, silently), and that refusal
    starts the short wait after a refusal instead of the whole timeout."""
    consumer = make_consumer(k, group_id=group)
    errors: set[str] = set()
    try:
        deadline = time.monotonic() + timeout
        lookup = consumer.list_topics(topic, timeout=timeout).topics[topic].error
        if lookup is not None and "AUTHORIZATION_FAILED" in str(lookup.name()):
            errors.add(f"METADATA_{lookup.name()}")
            deadline = min(deadline, time.monotonic() + AFTER_REFUSAL)
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(k.partitions)])
        while time.monotonic() < deadline and REFUSED not in errors:
            message = consumer.poll(0.5)
            if message is None:
                continue
            error = message.error()
            if error is None:
                return "read"
            if error.code() != KafkaError._PARTITION_EOF:
                if "AUTHORIZATION_FAILED" in str(error.name()):  # from the first one on
                    deadline = min(deadline, time.monotonic() + AFTER_REFUSAL)
                errors.add(str(error.name()))
        return ",".join(sorted(errors)) or "nothing"
    finally:
        consumer.close()


def read_each(k: KafkaSettings, topics: Iterable[str], timeout: float = 8.0) -> dict[str, str]:
    """:func:`read` of each topic, all at once (one consumer each, in threads): every refused
    read waits its short while after the refusal, and they need not wait it one after another."""
    wanted = list(topics)
    with ThreadPoolExecutor(max_workers=len(wanted)) as pool:
        results = pool.map(lambda topic: read(k, topic, timeout=timeout), wanted)
        return dict(zip(wanted, results, strict=True))


def refused(result: str) -> bool:
    """A read that got none of the seeded messages (librdkafka reports the authorization
    failure of the topic or of the group lookup, or only keeps trying: either way nothing of
    the topic arrives, where a permitted read gets its first message at once)."""
    return result != "read" and ("AUTHORIZATION_FAILED" in result or result == "nothing")


def read_in_group(k: KafkaSettings, topic: str, group: str, timeout: float = 30.0) -> str:
    """Like :func:`read`, subscribed in ``group`` (how the projector reads)."""
    consumer = make_consumer(k, group_id=group)
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None:
                continue
            error = message.error()
            return "read" if error is None else str(error.name())
        return "nothing"
    finally:
        consumer.close()


def seed(settings: Settings, *topics: str) -> None:
    """One message in each topic (as the admin), so a permitted read has something to get."""
    producer = make_producer(settings.kafka)
    for topic in topics:
        producer.produce(topic, key=b"seed", value=b"seed")
    flush_or_raise(producer)


def connect_error(k: KafkaSettings, timeout: float = 15.0) -> str:
    """What a client with ``k`` meets while asking for metadata: every request fails, and the
    errors librdkafka reports (served by ``poll``) say why. It asks in short requests until
    librdkafka has reported one (within a second), not one request waiting out its timeout."""
    errors: list[KafkaError] = []
    config: dict[str, Any] = {**client_config(k), "error_cb": errors.append, "log_level": 0}
    admin = AdminClient(config)
    failures: list[str] = []
    deadline = time.monotonic() + timeout
    while not errors and time.monotonic() < deadline:
        with pytest.raises(KafkaException) as failed:
            admin.list_topics(timeout=0.5)
        failures.append(str(failed.value))
        admin.poll(0.1)
    return " | ".join([*failures[-1:], *(f"{e.name()}: {e.str()}" for e in errors)])


def test_a_client_without_login_is_refused(guarded: Settings) -> None:
    plain = msgspec.structs.replace(
        guarded.kafka, security_protocol="PLAINTEXT", username="", password=Secret("")
    )
    error = connect_error(plain)
    # the SASL listener closes a connection that does not start with a SASL handshake
    assert "_ALL_BROKERS_DOWN" in error or "_TRANSPORT" in error, error
    # no connection ever gets through: the message times out (where one taken takes ms)
    assert write(plain, guarded.kafka.topic_uploads, timeout_ms=3000) is not None


def test_a_wrong_password_is_refused(guarded: Settings) -> None:
    wrong = login(guarded, "producer", password="not-the-password")
    error = connect_error(wrong)
    assert "_AUTHENTICATION" in error and "invalid credentials" in error, error
    unknown = login(guarded, "producer", password="x")
    unknown = msgspec.structs.replace(unknown, username=f"nobody-{uuid.uuid4().hex[:6]}")
    assert "_AUTHENTICATION" in connect_error(unknown)


def test_producer_writes_uploads_and_nothing_else(guarded: Settings) -> None:
    k, producer = guarded.kafka, login(guarded, "producer")
    assert write(producer, k.topic_uploads) is None
    for topic in (k.topic_status, k.topic_jobs, k.topic_file_events, k.topic_dlq):
        assert write(producer, topic) == REFUSED, topic
    seed(guarded, *k.topics())
    for topic, result in read_each(producer, k.topics()).items():
        assert refused(result), (topic, result)


def test_watcher_writes_file_events_only(guarded: Settings) -> None:
    k, watcher = guarded.kafka, login(guarded, "watcher")
    assert write(watcher, k.topic_file_events) is None
    for topic in (k.topic_uploads, k.topic_status, k.topic_jobs, k.topic_dlq):
        assert write(watcher, topic) == REFUSED, topic
    seed(guarded, k.topic_file_events)
    assert refused(read(watcher, k.topic_file_events, timeout=8))


def test_ingest_reads_its_inputs_and_cannot_write_them(guarded: Settings) -> None:
    k, ingest = guarded.kafka, login(guarded, "ingest")
    seed(guarded, *k.topics())
    assert read(ingest, k.topic_file_events) == "read"
    assert read(ingest, k.topic_uploads) == "read"
    assert refused(read(ingest, k.topic_jobs, timeout=8))
    assert write(ingest, k.topic_uploads) == REFUSED
    assert write(ingest, k.topic_file_events) == REFUSED
    for topic in (k.topic_status, k.topic_jobs, k.topic_dlq):
        assert write(ingest, topic) is None, topic


def test_transcode_reads_jobs_only(guarded: Settings) -> None:
    k, transcode = guarded.kafka, login(guarded, "transcode")
    seed(guarded, *k.topics())
    assert read(transcode, k.topic_jobs) == "read"
    others = (k.topic_uploads, k.topic_file_events, k.topic_status)
    for topic, result in read_each(transcode, others).items():
        assert refused(result), (topic, result)
    assert write(transcode, k.topic_uploads) == REFUSED
    assert write(transcode, k.topic_jobs) is None


def test_portal_projects_in_its_own_group_only(guarded: Settings) -> None:
    k, portal = guarded.kafka, login(guarded, "portal")
    seed(guarded, *k.topics())
    assert read_in_group(portal, k.topic_status, projector_group(k)) == "read"
    assert read_in_group(portal, k.topic_status, "someone-else") == "GROUP_AUTHORIZATION_FAILED"
    assert refused(read(portal, k.topic_jobs, group="vidflow-watermarks", timeout=8))
    assert write(portal, k.topic_uploads) is None
    assert write(portal, k.topic_status) == REFUSED
    # the operations page sees every topic's end offsets
    assert set(end_offsets(portal, k.topics())) == set(k.topics())


def test_components_cannot_make_topics_or_grant_themselves_more(guarded: Settings) -> None:
    admin = make_admin(login(guarded, "portal"))
    topic = f"{guarded.kafka.topic_status}-extra"
    futures = admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    with pytest.raises(KafkaException, match="TOPIC_AUTHORIZATION_FAILED"):
        futures[topic].result()
    more = AclBinding(
        ResourceType.TOPIC, guarded.kafka.topic_jobs, ResourcePatternType.LITERAL, "User:portal",
        "*", AclOperation.READ, AclPermissionType.ALLOW,
    )  # fmt: skip
    with pytest.raises(KafkaException, match="AUTHORIZATION_FAILED"):
        admin.create_acls([more])[more].result()
    with pytest.raises(KafkaException, match="TOPIC_AUTHORIZATION_FAILED"):
        ensure_topics(login(guarded, "producer"), [topic], timeout=10)


@pytest.mark.parametrize(
    ("module", "principal", "topic"),
    [
        ("dataflows.ingest_flow", "ingest", "file-events"),
        ("dataflows.transcode_flow", "transcode", "jobs"),
    ],
)
def test_a_flow_runs_as_its_own_principal(
    guarded: Settings, tmp_path: Path, module: str, principal: str, topic: str
) -> None:
    """The flow's Bytewax source (assigned partitions, no group) and idempotent sink work under
    its rules: a message it cannot decode comes out as a dead letter."""
    own = msgspec.structs.replace(guarded, kafka=login(guarded, principal))
    inbound = getattr(guarded.kafka, f"topic_{topic.replace('-', '_')}")
    dlq = TopicReader(guarded, guarded.kafka.topic_dlq)
    try:
        with FlowProcess(module, own, tmp_path) as flow:
            producer = make_producer(guarded.kafka)
            producer.produce(inbound, key=b"poison", value=b"not an event")
            flush_or_raise(producer)
            letters = dlq.wait_for(
                lambda seen: any(isinstance(e, ev.DeadLetter) for e in seen), 90, flow
            )
    finally:
        dlq.close()
    dead = [e for e in letters if isinstance(e, ev.DeadLetter)]
    # only the poison message: no letter from the source meeting a refusal of its own
    assert [(d.source_topic, d.raw) for d in dead] == [(inbound, b"not an event")], dead
