"""``vidflow submit FILE``: upload a video and (with ``--wait``) follow it to the end.

Any producer can do the same without vidflow: put the bytes in the bucket and write an
``upload.completed`` event to ``vidflow.uploads`` (see ``docs/events.md``).
"""

from __future__ import annotations

import sys
import time
import uuid
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import quote

import click
import msgspec
from confluent_kafka import TopicPartition
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

from connectors.kafka import (
    KafkaDeliveryError,
    deliver,
    make_consumer,
    make_producer,
    wait_for_kafka,
)
from connectors.storage import ensure_bucket, make_client, wait_for_storage
from core import events as ev
from core.errors import public_reason
from core.ids import upload_completed, upload_video_id
from core.layout import OWNER_METADATA, ObjectLayout
from core.logs import get_logger
from core.progress import VideoStatus, VideoSummary, apply_event
from core.settings import Settings, get_settings

__all__ = ["announce", "follow", "profiles_command", "submit_command", "upload"]

console = Console(stderr=True)
log = get_logger("vidflow.submit")


class _PutProgress:
    """Adapts minio's progress protocol to a rich progress bar."""

    def __init__(self, progress: Progress, label: str) -> None:
        self.progress = progress
        self.task = progress.add_task(label, total=None)

    def set_meta(self, object_name: str, total_length: int) -> None:
        self.progress.update(self.task, total=total_length)

    def update(self, length: int) -> None:
        self.progress.advance(self.task, length)


def upload(
    settings: Settings, path: Path, profile: str, owner: str, quiet: bool
) -> tuple[str, float]:
    """Put ``path`` into ``incoming/`` and announce it; returns (video id, time announced)."""
    client = make_client(settings.storage)
    ensure_bucket(client, settings.storage)
    upload_id = uuid.uuid4().hex
    key = ObjectLayout(settings.storage).incoming(upload_id)
    size = path.stat().st_size
    with Progress(
        "[progress.description]{task.description}", BarColumn(), DownloadColumn(),
        TransferSpeedColumn(), console=console, disable=quiet,
    ) as progress:  # fmt: skip
        # the owner travels with the object: the ingest flow believes it, not the event
        client.fput_object(
            settings.storage.bucket, key, str(path), progress=_PutProgress(progress, path.name),
            metadata={OWNER_METADATA: quote(owner, safe="")} if owner else None,
        )  # fmt: skip
    return announce(
        settings, upload_id, key, size, filename=path.name, owner=owner, profile=profile
    )


def announce(
    settings: Settings,
    upload_id: str,
    key: str,
    size: int,
    *,
    filename: str,
    owner: str,
    profile: str,
) -> tuple[str, float]:
    """Produce ``upload.completed`` for an object already in the bucket; returns (video id, time
    announced). The video id follows from the upload id alone, so it is known at once and an
    announcement sent twice (a retry) still names one video."""
    event = upload_completed(
        upload_id, bucket=settings.storage.bucket, key=key, size=size, filename=filename,
        owner=owner, profile=profile,
    )  # fmt: skip
    producer = make_producer(settings.kafka)
    announced = time.time()
    try:
        deliver(producer, settings.kafka.topic_uploads, event)
    except ev.DecodeError as exc:  # the contract's bounds, checked before anything is sent
        raise click.ClickException(public_reason("the upload cannot be announced", exc)) from None
    except KafkaDeliveryError as exc:
        raise click.ClickException(str(exc)) from None
    return upload_video_id(upload_id), announced


def follow(
    settings: Settings, video_id: str, since: float, timeout: float, quiet: bool
) -> VideoSummary:
    """Read the video's status events until a terminal one (or ``timeout`` seconds)."""
    topic = settings.kafka.topic_status
    consumer = make_consumer(settings.kafka, group_id=f"vidflow-submit-{uuid.uuid4().hex}")
    summary = VideoSummary(video_id=video_id)
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        start_ms = int((since - 5) * 1000)
        wanted = [TopicPartition(topic, p, start_ms) for p in partitions]
        consumer.assign(consumer.offsets_for_times(wanted, timeout=10))
        deadline = time.monotonic() + timeout
        with Progress(console=console, disable=quiet) as progress:
            task = progress.add_task("ingesting", total=100)
            while not summary.finished and time.monotonic() < deadline:
                message = consumer.poll(0.5)
                if message is None or message.error() is not None:
                    continue
                event = ev.try_decode(message.value(), expect="status")
                if (
                    isinstance(event, ev.DecodeError)
                    or getattr(event, "video_id", None) != video_id
                ):
                    continue
                apply_event(summary, event)
                progress.update(task, description=summary.status, completed=summary.progress)
    finally:
        consumer.close()
    return summary


def _document(summary: VideoSummary) -> dict[str, Any]:
    return {
        "video_id": summary.video_id,
        "status": summary.status if summary.finished else f"timeout ({summary.status})",
        "error": summary.error,
        "warnings": summary.warnings,
        "source": msgspec.to_builtins(summary.source),
        "renditions": [
            {"height": r.height, "width": r.width, "key": r.key, "hls": r.hls}
            for r in summary.renditions
        ],
    }


def _owner(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    """``--owner`` within the contract's bounds, refused before any byte is uploaded."""
    try:
        return msgspec.convert(value, ev.Owner)
    except msgspec.ValidationError:
        raise click.BadParameter(
            f"an owner is at most {ev.ID_MAX} characters, without spaces or control characters"
        ) from None


def _fail(as_json: bool, video_id: str | None, exc: Exception) -> NoReturn:
    """Report a failure as a public reason only (the detail is logged), then exit 1."""
    reason = public_reason("submit failed", exc)
    log.error("submit failed", video=video_id or "", error=repr(exc))
    if as_json:
        document = {"video_id": video_id, "status": "failed", "error": reason}
        sys.stdout.write(msgspec.json.encode(document).decode() + "\n")
    else:
        console.print(reason)
    sys.exit(1)


@click.command("submit")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--profile", default=None,
    help="Transcoding profile (default: the setting); `vidflow profiles` lists them.",
)  # fmt: skip
@click.option(
    "--owner", default="", callback=_owner,
    help="Owner recorded with the upload (at most 64 characters, no spaces).",
)  # fmt: skip
@click.option("--wait", is_flag=True, help="Follow the video until it is done or failed.")
@click.option("--timeout", default=3600.0, show_default=True, help="Seconds --wait waits.")
@click.option("--json", "as_json", is_flag=True, help="Print one final JSON document.")
def submit_command(
    path: Path, profile: str | None, owner: str, wait: bool, timeout: float, as_json: bool
) -> None:
    """Upload PATH and announce it to the pipeline."""
    settings = get_settings()
    chosen = profile or settings.transcode.default_profile
    if chosen not in settings.transcode.profiles:  # refused before any byte is sent
        known = ", ".join(settings.transcode.profiles)
        reason = f"unknown profile {chosen!r} (known: {known}; see `vidflow profiles`)"
        raise click.BadParameter(reason, param_hint="--profile")
    try:
        wait_for_storage(settings.storage, timeout=30)
        wait_for_kafka(settings.kafka, timeout=30)
        video_id, announced = upload(settings, path, chosen, owner, quiet=as_json)
    except click.ClickException:
        raise
    except Exception as exc:  # noqa: BLE001 - a store's or broker's error may carry URLs, paths
        _fail(as_json, None, exc)
    if not wait:
        if as_json:
            sys.stdout.write(
                msgspec.json.encode({"video_id": video_id, "status": "submitted"}).decode() + "\n"
            )
        else:
            console.print(f"submitted {path.name}: video {video_id}")
        return
    try:
        summary = follow(settings, video_id, announced, timeout, quiet=as_json)
    except Exception as exc:  # noqa: BLE001 - shown as a public reason only
        _fail(as_json, video_id, exc)
    if as_json:
        sys.stdout.write(msgspec.json.encode(_document(summary)).decode() + "\n")
    else:
        console.print(
            f"{path.name}: {summary.status}" + (f" ({summary.error})" if summary.error else "")
        )
    if summary.status is not VideoStatus.COMPLETED:
        sys.exit(1)


@click.command("profiles")
def profiles_command() -> None:
    """List the transcoding profiles, each with its short description (default marked)."""
    transcode = get_settings().transcode
    for name, profile in transcode.profiles.items():
        mark = " (default)" if name == transcode.default_profile else ""
        click.echo(f"{name}{mark}: {profile.description or profile.kind}")
