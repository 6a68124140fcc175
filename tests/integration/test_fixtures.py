"""The test run's own machinery on real services: what every integration test's teardown does
must be right, and must not cost a fixed wait."""

from __future__ import annotations

import gc
import time
import uuid

import psycopg
import psycopg.conninfo
import pytest

from connectors.kafka import flush_or_raise, make_producer, produce_event
from core import events as ev
from core.settings import Settings
from tests.databases import drop_database
from tests.integration.conftest import read_topic

pytestmark = pytest.mark.integration


def test_read_topic_returns_every_message_once_the_end_is_reached(
    isolated_settings: Settings,
) -> None:
    """The teardown's public-failure check reads the status and dead-letter topics of every
    test: a read that waits out a fixed batch timeout (it waited 5 s per topic) costs each test
    seconds; the end offset is known, so the read stops when it gets there."""
    topic = isolated_settings.kafka.topic_status
    sent = [
        ev.FileDeleted(id=ev.event_id(f"r{i}", topic), stream_id=f"s{i}", host="h", path="/p")
        for i in range(5)
    ]
    producer = make_producer(isolated_settings.kafka)
    for event in sent:
        produce_event(producer, topic, event)
    flush_or_raise(producer)

    started = time.monotonic()
    values = read_topic(isolated_settings, topic)
    elapsed = time.monotonic() - started

    assert sorted(values) == sorted(ev.encode(e) for e in sent)
    assert elapsed < 2.0, f"reading 5 messages took {elapsed:.1f}s"
    assert read_topic(isolated_settings, isolated_settings.kafka.topic_dlq) == []


def test_a_refused_drop_is_asked_again_then_raised_with_the_connection_closed(
    settings: Settings,
) -> None:
    """A test database's drop was refused once in a run (an autovacuum backend of another role
    on it), failing the teardown and leaking the admin connection (a ResourceWarning failed the
    next test). A refusal that passes is asked again until the time is up; the connection is
    closed either way. Refused for good here: the ``postgres`` database is not ours to drop."""
    started = time.monotonic()
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        drop_database(settings.postgres.dsn, "postgres", timeout=1.0)
    assert time.monotonic() - started >= 1.0  # asked again, not given up at once
    gc.collect()  # an unclosed connection would warn (an error in this run) right here


def test_a_database_in_use_is_dropped_with_its_connections(settings: Settings) -> None:
    name = f"t_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(settings.postgres.dsn, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    dsn = psycopg.conninfo.make_conninfo(settings.postgres.dsn, dbname=name)
    with psycopg.connect(dsn) as held:
        drop_database(settings.postgres.dsn, name)
        with pytest.raises(psycopg.OperationalError):
            held.execute("SELECT 1")
    with psycopg.connect(settings.postgres.dsn) as admin:
        found = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchall()
    assert found == []
