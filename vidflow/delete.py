"""``vidflow delete VIDEO_ID``: the operator's delete (admin), the same ``video.delete`` the
portal's button and API produce; with ``--wait`` it follows the status topic to the
``video.deleted`` that answers it."""

from __future__ import annotations

import time
import uuid

import click
import msgspec
from confluent_kafka import TopicPartition

from connectors.kafka import deliver, make_consumer, make_producer
from core import events as ev
from core.errors import public_reason
from core.logs import get_logger
from core.settings import Settings, get_settings

__all__ = ["delete_command", "request_delete", "wait_deleted"]

log = get_logger("vidflow.delete")
OPERATOR = "admin"  # who ``video.deleted`` says asked: the operator, not a portal user


def request_delete(settings: Settings, video_id: str) -> ev.VideoDelete:
    """Produce ``video.delete`` for ``video_id``; the event (its id names the answer)."""
    event = ev.VideoDelete(
        id=ev.event_id("delete", video_id, OPERATOR, ev.now()),
        video_id=video_id,
        requested_by=OPERATOR,
    )
    deliver(make_producer(settings.kafka), settings.kafka.topic_jobs, event)
    return event


def wait_deleted(
    settings: Settings, request: ev.VideoDelete, timeout: float
) -> ev.VideoDeleted | None:
    """The ``video.deleted`` answering ``request``, or None after ``timeout`` seconds."""
    topic = settings.kafka.topic_status
    consumer = make_consumer(settings.kafka, group_id=f"vidflow-delete-{uuid.uuid4().hex}")
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        start_ms = int((request.ts - 5) * 1000)
        wanted = [TopicPartition(topic, p, start_ms) for p in partitions]
        consumer.assign(consumer.offsets_for_times(wanted, timeout=10))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None or message.error() is not None:
                continue
            event = ev.try_decode(message.value(), expect="status")
            if isinstance(event, ev.VideoDeleted) and event.run == request.id:
                return event
    finally:
        consumer.close()
    return None


@click.command("delete")
@click.argument("video_id")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--wait", is_flag=True, help="Wait until every object of the video is removed.")
@click.option("--timeout", default=600.0, show_default=True, help="Seconds --wait waits.")
def delete_command(video_id: str, yes: bool, wait: bool, timeout: float) -> None:
    """Delete VIDEO_ID: cancel its encode, remove every object of it, drop it from the portal."""
    try:
        video_id = msgspec.convert(video_id, ev.Id)
    except msgspec.ValidationError:
        raise click.BadParameter("not a video id", param_hint="VIDEO_ID") from None
    if not yes:
        click.confirm(f"Delete video {video_id} and every file of it?", abort=True)
    settings = get_settings()
    try:
        request = request_delete(settings, video_id)
        deleted = wait_deleted(settings, request, timeout) if wait else None
    except Exception as exc:  # noqa: BLE001 - a broker's error may carry hosts, paths
        log.error("delete failed", video=video_id, error=repr(exc))
        raise click.ClickException(public_reason("delete failed", exc)) from None
    if not wait:
        click.echo(f"delete requested: video {video_id}")
    elif deleted is None:
        raise click.ClickException(f"video {video_id}: not deleted within {timeout:.0f}s")
    else:
        click.echo(f"deleted: video {video_id}")
