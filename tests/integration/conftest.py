"""Fixtures shared by the integration tests.

Every test that gets isolated topics also gets, at teardown, the check that every failure text
it caused a user to be able to see is public (:func:`core.errors.is_public`: no URL, query
string, signature, traceback or local path): the failure texts of ``vidflow.status`` and every
dead letter on ``vidflow.dlq``; a test with a portal database also has its projection checked
(videos' errors, timeline summaries and bodies, stored dead letters).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import psycopg
import pytest
from confluent_kafka import TopicPartition

from connectors.db import dispose_engine
from connectors.kafka import end_offsets, make_consumer
from core import events as ev
from core.errors import is_public
from core.settings import Settings
from portal.migrate import upgrade
from tests.databases import drop_database
from tests.flows import QUICK_FETCH
from tests.isolation import kept_consumer


def failure_texts(event: ev.AnyEvent) -> list[str]:
    """The texts of ``event`` a user may be shown as a failure reason or warning."""
    match event:
        case ev.JobFailed() | ev.IngestRestarted():
            return [event.reason]
        case ev.RenditionFailed():
            return [event.error]
        case ev.JobCompleted():
            return list(event.warnings)
        case ev.DeadLetter():
            return [event.error]
        case _:
            return []


def read_topic(
    settings: Settings, topic: str, timeout: float = 30.0, ends: dict[int, int] | None = None
) -> list[bytes]:
    """Every message value of ``topic`` from the beginning to its end now (or to ``ends``,
    its end offsets by partition, when the caller has them). Batches are asked for with a
    short wait (``consume`` waits its whole timeout for a batch it cannot fill), and the read
    stops as soon as every partition reached its end offset."""
    if ends is None:
        ends = end_offsets(settings.kafka, [topic], consumer=kept_consumer(settings.kafka))
        ends = ends.get(topic, {})
    wanted = {p: end for p, end in ends.items() if end > 0}
    if not wanted:
        return []
    consumer = make_consumer(
        settings.kafka, group_id=f"vidflow-test-{uuid.uuid4().hex}", **QUICK_FETCH
    )
    values: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        consumer.assign([TopicPartition(topic, p, 0) for p in wanted])
        done: set[int] = set()
        while len(done) < len(wanted):
            assert time.monotonic() < deadline, f"{topic} ended before its high watermark"
            batch = consumer.consume(500, 0.1)
            for message in batch:
                if message.error() is not None:
                    continue
                values.append(message.value() or b"")
                partition = int(message.partition() or 0)
                if int(message.offset() or 0) + 1 >= wanted[partition]:
                    done.add(partition)
    finally:
        consumer.close()
    return values


def assert_public_failures_on_topics(settings: Settings) -> None:
    """Every failure text on the status topic and every dead letter's error is public."""
    families = {settings.kafka.topic_status: "status", settings.kafka.topic_dlq: "dlq"}
    ends = end_offsets(settings.kafka, list(families), consumer=kept_consumer(settings.kafka))
    for topic, family in families.items():
        for raw in read_topic(settings, topic, ends=ends.get(topic, {})):
            event = ev.try_decode(raw, family)
            if isinstance(event, ev.DecodeError):
                continue  # a test's deliberate poison: its dead letter is checked instead
            for text in failure_texts(event):
                assert is_public(text), f"not a public reason on {topic}: {text!r}"


def assert_public_failures_in_projection(settings: Settings) -> None:
    """Every failure text the portal stored (and so shows) is public."""
    queries = (
        "SELECT error FROM videos WHERE error <> ''",
        "SELECT summary FROM timeline",
        "SELECT body->>'reason' FROM timeline WHERE body ? 'reason'",
        "SELECT body->>'error' FROM timeline WHERE body ? 'error'",
        "SELECT jsonb_array_elements_text(body->'warnings') FROM timeline WHERE body ? 'warnings'",
        "SELECT error FROM dead_letters",
    )
    with psycopg.connect(settings.postgres.dsn) as conn:
        for query in queries:
            for (text,) in conn.execute(query):
                assert is_public(text), f"not a public reason in the projection: {text!r}"


@pytest.fixture
def isolated_settings(isolated_settings: Settings) -> Iterator[Settings]:
    """The root fixture, plus the public-failure check of its topics at teardown."""
    yield isolated_settings
    assert_public_failures_on_topics(isolated_settings)


@pytest.fixture
def portal_settings(isolated_settings: Settings, tmp_path: Path) -> Iterator[Settings]:
    """Isolated topics plus a database of its own, migrated, and a home for session files;
    at teardown, every failure text in the projection must be public."""
    name = f"t_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(isolated_settings.postgres.dsn, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    settings = msgspec.structs.replace(
        isolated_settings,
        home=tmp_path / "home",
        postgres=msgspec.structs.replace(isolated_settings.postgres, database=name),
    )
    upgrade(settings)
    yield settings
    try:
        assert_public_failures_in_projection(settings)
    finally:
        dispose_engine(settings.postgres)
        drop_database(isolated_settings.postgres.dsn, name)


def status_json(event: ev.Event, **changes: Any) -> bytes:
    """``event`` as JSON with ``changes`` applied to its fields (nested with ``a__b``): how a
    test writes a poison message that ``encode`` would refuse."""
    body: dict[str, Any] = msgspec.to_builtins(event)
    body["type"] = event.type
    for name, value in changes.items():
        target = body
        *path, last = name.split("__")
        for part in path:
            target = target[part]
        target[last] = value
    return msgspec.json.encode(body)
