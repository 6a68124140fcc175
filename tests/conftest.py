"""Session fixtures giving tests real services (see ``tests/services.py`` for where from)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import msgspec
import pytest
from confluent_kafka.admin import AdminClient

from connectors.kafka import ensure_topics
from connectors.storage import ensure_bucket, make_client
from tests.services import real_services
from vidflow.settings import Settings


@pytest.fixture(scope="session")
def settings() -> Iterator[Settings]:
    """Settings whose Kafka, MinIO and PostgreSQL answer for real; failing here fails the run."""
    try:
        with real_services() as (_, resolved):
            yield resolved
    except Exception as exc:  # noqa: BLE001 - report any start-up failure as the reason
        pytest.fail(f"real services are not available: {type(exc).__name__}: {exc}", pytrace=False)


@pytest.fixture
def isolated_settings(settings: Settings) -> Iterator[Settings]:
    """Like ``settings`` but with fresh topics and a fresh bucket, so tests never share data."""
    tag = uuid.uuid4().hex[:10]
    kafka = msgspec.structs.replace(
        settings.kafka,
        topic_file_events=f"t{tag}.file-events",
        topic_uploads=f"t{tag}.uploads",
        topic_jobs=f"t{tag}.jobs",
        topic_status=f"t{tag}.status",
        topic_dlq=f"t{tag}.dlq",
    )
    storage = msgspec.structs.replace(settings.storage, bucket=f"t-{tag}")
    isolated = msgspec.structs.replace(settings, kafka=kafka, storage=storage)
    ensure_topics(isolated.kafka)
    client = make_client(isolated.storage)
    ensure_bucket(client, isolated.storage.bucket)
    yield isolated
    AdminClient({"bootstrap.servers": kafka.bootstrap}).delete_topics(kafka.topics())
    for obj in client.list_objects(storage.bucket, recursive=True):
        client.remove_object(storage.bucket, obj.object_name or "")
    client.remove_bucket(storage.bucket)
