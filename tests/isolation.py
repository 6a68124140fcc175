"""Settings whose topics and bucket belong to one test (or one benchmark run) alone.

Every test makes and removes its own topics, and checks them at teardown: the Kafka clients
doing that are kept per broker and login for the whole process, since each new client pays a
connection and a SCRAM login (0.1 to 0.2 s, several times per test over hundreds of tests).
"""

from __future__ import annotations

import functools
import uuid

import msgspec
from confluent_kafka import Consumer
from confluent_kafka.admin import AdminClient

from connectors.kafka import create_topics, make_admin, make_consumer
from connectors.storage import ensure_bucket, make_client
from core.settings import KafkaSettings, Settings
from vidflow.stack.credentials import stack_login

__all__ = ["isolated_copy", "kept_admin", "kept_consumer", "remove_isolated"]


def _connection(k: KafkaSettings) -> KafkaSettings:
    """``k`` without its topic names: what a client kept for several tests is keyed by."""
    return msgspec.structs.replace(
        k, **{f: "" for f in k.__struct_fields__ if f.startswith("topic_")}
    )


@functools.cache
def _admin(connection: KafkaSettings) -> AdminClient:
    return make_admin(connection)


@functools.cache
def _consumer(connection: KafkaSettings) -> Consumer:
    # warnings only: it is asked about every test's topics, and notes each deletion
    return make_consumer(
        connection, group_id=f"vidflow-test-offsets-{uuid.uuid4().hex}", log_level=4
    )


def kept_admin(k: KafkaSettings) -> AdminClient:
    """The process's admin client for ``k``'s broker and login."""
    return _admin(_connection(k))


def kept_consumer(k: KafkaSettings) -> Consumer:
    """The process's consumer for ``k``'s broker and login, for metadata and end offsets only
    (it never subscribes or commits)."""
    return _consumer(_connection(k))


def isolated_copy(settings: Settings, prefix: str = "t") -> Settings:
    """``settings`` with fresh, created topics and bucket under a unique tag; with no Kafka
    login given, logged in as the local stack's admin (making topics takes a super user)."""
    settings = stack_login(settings)
    tag = f"{prefix}{uuid.uuid4().hex[:10]}"
    kafka = msgspec.structs.replace(
        settings.kafka,
        topic_file_events=f"{tag}.file-events",
        topic_uploads=f"{tag}.uploads",
        topic_jobs=f"{tag}.jobs",
        topic_status=f"{tag}.status",
        topic_dlq=f"{tag}.dlq",
    )
    storage = msgspec.structs.replace(settings.storage, bucket=tag.replace("_", "-").lower())
    isolated = msgspec.structs.replace(settings, kafka=kafka, storage=storage)
    create_topics(isolated.kafka, isolated.kafka.topics(), admin=kept_admin(isolated.kafka))
    ensure_bucket(make_client(isolated.storage), isolated.storage)
    return isolated


def remove_isolated(settings: Settings) -> None:
    """Delete the topics and the bucket (with its objects) again."""
    kept_admin(settings.kafka).delete_topics(settings.kafka.topics())
    client = make_client(settings.storage)
    bucket = settings.storage.bucket
    for obj in client.list_objects(bucket, recursive=True):
        client.remove_object(bucket, obj.object_name or "")
    client.remove_bucket(bucket)
