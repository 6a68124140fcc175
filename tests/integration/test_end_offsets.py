"""End offsets of a topic asked for the moment it exists.

The metadata lists a new topic's partitions before the broker leads them; asked then, the
broker answers "not leader for partition". Under load (the suite on two cores) that window is
wide enough to hit: it failed a whole CI run at teardown. ``end_offsets`` asks again.
"""

from __future__ import annotations

import multiprocessing
import time
import uuid
from collections.abc import Iterator

import pytest

from connectors.kafka import create_topics, end_offsets
from core.settings import Settings
from tests.isolation import kept_admin, kept_consumer

TOPICS = 30


def _spin(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


@pytest.fixture
def busy_host() -> Iterator[None]:
    """Two spinning processes: the broker settles a new partition's leader slowly, as in CI."""
    spinners = [multiprocessing.Process(target=_spin, args=(30.0,)) for _ in range(2)]
    for spinner in spinners:
        spinner.start()
    yield
    for spinner in spinners:
        spinner.terminate()
        spinner.join()


def test_a_topic_just_created_has_its_end_offsets(settings: Settings, busy_host: None) -> None:
    k = settings.kafka
    admin, consumer = kept_admin(k), kept_consumer(k)
    for _ in range(TOPICS):
        topic = f"vidflow-test-ends-{uuid.uuid4().hex[:10]}"
        create_topics(k, [topic], admin=admin)
        try:
            ends = end_offsets(k, [topic], consumer=consumer)
        finally:
            admin.delete_topics([topic])
        assert ends == {topic: dict.fromkeys(range(k.partitions), 0)}
