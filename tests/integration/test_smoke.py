"""Each real service answers: an event through Kafka, an object through MinIO, a row through
PostgreSQL, and ffprobe of a clip generated with ffmpeg's lavfi sources."""

from __future__ import annotations

import io
import subprocess
import uuid
from pathlib import Path

import psycopg
import pytest

from connectors.ffmpeg import ffmpeg_binary, probe
from connectors.kafka import (
    ensure_topics,
    flush_or_raise,
    make_admin,
    make_consumer,
    make_producer,
    produce_event,
    wait_for_topics,
)
from connectors.retry import ServiceUnavailable
from connectors.storage import make_client
from core import events as ev
from core.settings import Settings

pytestmark = pytest.mark.integration


def test_event_through_kafka_comes_back_decoded(isolated_settings: Settings) -> None:
    k = isolated_settings.kafka
    sent = ev.FileChanged(
        id=ev.event_id("smoke"), stream_id="s1", host="h", path="/v.mp4", size=42, mtime=1.5
    )
    producer = make_producer(k)
    produce_event(producer, k.topic_file_events, sent)
    flush_or_raise(producer)

    consumer = make_consumer(k, group_id=f"smoke-{uuid.uuid4().hex}")
    consumer.subscribe([k.topic_file_events])
    try:
        message = None
        for _ in range(60):
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                break
        assert message is not None and message.error() is None
        assert message.key() == b"s1"
        assert ev.decode(message.value(), expect="file-events") == sent
    finally:
        consumer.close()


def test_a_created_topic_is_ready_when_ensure_returns(settings: Settings) -> None:
    topic = f"fresh-{uuid.uuid4().hex[:10]}"
    ensure_topics(settings.kafka, [topic])
    metadata = make_admin(settings.kafka).list_topics(topic, timeout=5).topics[topic]
    assert metadata.error is None and len(metadata.partitions) == settings.kafka.partitions
    with pytest.raises(ServiceUnavailable, match="never-created"):  # named, not hung on
        wait_for_topics(settings.kafka, [f"never-created-{uuid.uuid4().hex[:6]}"], timeout=2)
    make_admin(settings.kafka).delete_topics([topic])


def test_object_through_minio(isolated_settings: Settings) -> None:
    client = make_client(isolated_settings.storage)
    bucket = isolated_settings.storage.bucket
    payload = uuid.uuid4().bytes * 1000
    client.put_object(bucket, "smoke/object", io.BytesIO(payload), len(payload))
    response = client.get_object(bucket, "smoke/object")
    try:
        assert response.read() == payload
    finally:
        response.close()
        response.release_conn()


def test_row_through_postgres(settings: Settings) -> None:
    with psycopg.connect(settings.postgres.dsn) as conn:
        conn.execute("create temporary table smoke (id int primary key, name text)")
        conn.execute("insert into smoke values (%s, %s)", (1, "vidflow"))
        assert conn.execute("select name from smoke where id = 1").fetchone() == ("vidflow",)
        tables = {row[0] for row in conn.execute("select tablename from pg_tables")}
    assert {"videos", "timeline", "consumer_offsets"} <= tables  # migrations ran


def test_ffprobe_of_a_generated_clip(tmp_path: Path) -> None:
    clip = tmp_path / "clip.mp4"
    subprocess.run(
        [
            ffmpeg_binary(), "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25",
            "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", "2",
            "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", "-shortest", str(clip),
        ],
        check=True,
    )  # fmt: skip
    result = probe(str(clip))
    assert (result.width, result.height) == (320, 240)
    assert result.duration == pytest.approx(2.0, abs=0.1)
    assert result.video_codec == "h264"
    assert result.has_audio and result.audio_codec == "aac"
    assert result.fps == pytest.approx(25.0)
