"""The projector never dies on one event (issue 9, observations 4 to 6), and waits out an outage.

Each poison status event goes to the DLQ with its reason, its offset is committed, the next
good event is still projected and the projector thread is still alive. A database that cannot
be reached is retried, and nothing is dead-lettered for it.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from confluent_kafka import Message
from sqlalchemy import create_engine, text

from connectors.kafka import flush_or_raise, make_producer
from core import events as ev
from core.errors import is_public
from core.layout import ObjectLayout
from core.settings import Settings
from portal.projector import Projector
from tests.flows import free_port
from tests.integration.conftest import read_topic, status_json

pytestmark = pytest.mark.integration

SHA = "cd" * 32
Poison = Callable[[str, ObjectLayout], bytes]
STAGE = "project"  # what the projector names its dead letters


def _rendition(video: str, layout: ObjectLayout, height: int = 240) -> ev.Rendition:
    return ev.Rendition(height=height, width=426, key=layout.rendition(video, height),
                        hls=layout.hls_playlist(video, height))  # fmt: skip


def _job_event(video: str, layout: ObjectLayout, **fields: Any) -> ev.RenditionCompleted:
    return ev.RenditionCompleted(id=f"poison-{uuid.uuid4().hex[:8]}", video_id=video,
                                 run=f"job-{video}:240p", seq=1, job_id=f"job-{video}",
                                 rendition=_rendition(video, layout), **fields)  # fmt: skip


POISONS: dict[str, Poison] = {
    "nul-in-text": lambda v, _: status_json(
        ev.JobFailed(id="poison-nul", video_id=v, run=f"job-{v}", seq=1, reason="x"),
        reason="bad\x00reason",
    ),
    "id-over-64": lambda v, _: status_json(
        ev.JobFailed(id="poison-long", video_id=v, run=f"job-{v}", seq=1, reason="x"),
        video_id="v" * 65,
    ),
    "seq-2^31": lambda v, _: status_json(
        ev.JobFailed(id="poison-seq", video_id=v, run=f"job-{v}", seq=1, reason="x"), seq=2**31
    ),
    "height-2^31": lambda v, layout: status_json(_job_event(v, layout), rendition__height=2**31),
    "owner-change": lambda v, _: ev.encode(
        ev.IngestStarted(
            id="poison-owner",
            video_id=v,
            run=f"ingest:{v}:again",
            seq=1,
            origin="upload",
            filename="mine.mp4",
            owner="mallory",
        )
    ),
    "key-of-another-video": lambda v, layout: status_json(
        _job_event(v, layout), rendition__key=layout.source("another-video")
    ),
}


def _produce(settings: Settings, video: str, values: list[bytes]) -> list[tuple[int, int]]:
    """Produce ``values`` keyed by ``video``; their (partition, offset), in order."""
    producer = make_producer(settings.kafka)
    positions: list[tuple[int, int]] = []

    def delivered(error: Any, message: Message) -> None:
        assert error is None, error
        positions.append((int(message.partition() or 0), int(message.offset() or 0)))

    for value in values:
        producer.produce(settings.kafka.topic_status, key=video.encode(), value=value,
                         on_delivery=delivered)  # fmt: skip
        flush_or_raise(producer)  # one by one: positions in order
    return positions


@contextmanager
def _running(projector: Projector) -> Iterator[threading.Thread]:
    stop = threading.Event()
    worker = threading.Thread(target=projector.run, kwargs={"stop": stop}, daemon=True)
    worker.start()
    try:
        yield worker
    finally:
        stop.set()
        worker.join(20)


def _query(settings: Settings, sql: str, **params: Any) -> list[tuple[Any, ...]]:
    engine = create_engine(settings.postgres.url)
    try:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.execute(text(sql), params)]
    finally:
        engine.dispose()


def _wait_for_timeline(settings: Settings, event_id: str, worker: threading.Thread) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if _query(settings, "SELECT 1 FROM timeline WHERE id = :i", i=event_id):
            return
        assert worker.is_alive(), "the projector died"
        time.sleep(0.2)
    raise AssertionError(f"{event_id} was never projected")


@pytest.mark.parametrize("poison", list(POISONS), ids=list(POISONS))
def test_a_poison_status_event_is_dead_lettered_and_the_projector_goes_on(
    portal_settings: Settings, poison: str
) -> None:
    video = uuid.uuid4().hex
    layout = ObjectLayout(portal_settings.storage)
    run = f"ingest:{video}"
    first = ev.IngestStarted(id=f"{run}:1", video_id=video, run=run, seq=1, origin="upload",
                             filename="a.mp4", owner="alice")  # fmt: skip
    after = ev.ChunkStored(id=f"{run}:2", video_id=video, run=run, seq=2, bytes_so_far=10,
                           chunk=ev.ChunkRef(index=0, offset=0, size=10, sha256=SHA))  # fmt: skip
    positions = _produce(
        portal_settings, video, [ev.encode(first), POISONS[poison](video, layout), ev.encode(after)]
    )
    partition, offset = positions[1]
    projector = Projector(portal_settings)
    with _running(projector) as worker:
        _wait_for_timeline(portal_settings, after.id, worker)
        assert worker.is_alive()

    letters = _query(
        portal_settings,
        'SELECT source_topic, partition, "offset", stage, error FROM dead_letters',
    )
    assert len(letters) == 1, letters
    topic, letter_partition, letter_offset, stage, error = letters[0]
    assert (topic, letter_partition, letter_offset, stage) == (
        portal_settings.kafka.topic_status, partition, offset, STAGE,
    )  # fmt: skip
    assert error and is_public(error)
    on_topic = [
        ev.decode(raw, "dlq")
        for raw in read_topic(portal_settings, portal_settings.kafka.topic_dlq)
    ]
    assert [
        (d.source_topic, d.partition, d.offset, d.stage, d.error)
        for d in on_topic
        if isinstance(d, ev.DeadLetter)
    ] == [(topic, partition, offset, STAGE, error)]
    committed = _query(
        portal_settings,
        "SELECT next_offset FROM consumer_offsets WHERE topic = :t AND partition = :p",
        t=topic, p=partition,
    )  # fmt: skip
    assert committed and committed[0][0] > offset
    assert _query(portal_settings, "SELECT id, owner FROM videos") == [(video, "alice")]
    assert _query(portal_settings, "SELECT key FROM renditions") == []
    timeline = [row[0] for row in _query(portal_settings, "SELECT id FROM timeline ORDER BY seq")]
    assert timeline == [first.id, after.id]


def test_an_outage_of_the_database_is_waited_out_not_dead_lettered(
    portal_settings: Settings,
) -> None:
    video = uuid.uuid4().hex
    run = f"ingest:{video}"
    events = [
        ev.IngestStarted(id=f"{run}:1", video_id=video, run=run, seq=1, origin="watch"),
        ev.IngestRestarted(id=f"{run}:2", video_id=video, run=run, seq=2, reason="file shrank"),
    ]
    working = create_engine(portal_settings.postgres.url)
    # a server that refuses every connection: PostgreSQL down, as the projector sees it
    down = create_engine(portal_settings.postgres.url.set(port=free_port()))
    projector = Projector(portal_settings, engine=down)
    _produce(portal_settings, video, [ev.encode(events[0])])
    try:
        with _running(projector) as worker:
            _wait_until(lambda: projector.retries >= 2, worker)  # assigning: offsets unreadable
            projector.engine = working
            _wait_for_timeline(portal_settings, events[0].id, worker)

            projector.engine = down  # down again, with an event to apply
            before = projector.retries
            _produce(portal_settings, video, [ev.encode(events[1])])
            _wait_until(lambda: projector.retries >= before + 2, worker)
            projector.engine = working
            _wait_for_timeline(portal_settings, events[1].id, worker)
            assert worker.is_alive()
    finally:
        working.dispose()
        down.dispose()
    assert _query(portal_settings, "SELECT count(*) FROM dead_letters") == [(0,)]
    assert projector.dead_lettered == 0
    assert read_topic(portal_settings, portal_settings.kafka.topic_dlq) == []


def _wait_until(condition: Callable[[], bool], worker: threading.Thread) -> None:
    deadline = time.monotonic() + 30
    while not condition():
        assert worker.is_alive(), "the projector died"
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)
