"""Settings whose topics and bucket belong to one test (or one benchmark run) alone."""

from __future__ import annotations

import uuid

import msgspec

from connectors.kafka import ensure_topics, make_admin
from connectors.storage import ensure_bucket, make_client
from core.settings import Settings
from vidflow.stack.credentials import stack_login

__all__ = ["isolated_copy", "remove_isolated"]


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
    ensure_topics(isolated.kafka)
    ensure_bucket(make_client(isolated.storage), isolated.storage)
    return isolated


def remove_isolated(settings: Settings) -> None:
    """Delete the topics and the bucket (with its objects) again."""
    make_admin(settings.kafka).delete_topics(settings.kafka.topics())
    client = make_client(settings.storage)
    bucket = settings.storage.bucket
    for obj in client.list_objects(bucket, recursive=True):
        client.remove_object(bucket, obj.object_name or "")
    client.remove_bucket(bucket)
