"""The test run's own machinery on real services: what every integration test's teardown does
must be right, and must not cost a fixed wait."""

from __future__ import annotations

import time

import pytest

from connectors.kafka import flush_or_raise, make_producer, produce_event
from core import events as ev
from core.settings import Settings
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
