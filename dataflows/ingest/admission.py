"""Admission: what the ingest flow is told is checked before it is acted on.

Every event on ``vidflow.file-events`` and ``vidflow.uploads`` is untrusted input (outside
producers write the uploads topic). An event is admitted only within its sender's grant:

- a file event only for a regular file under the watched roots (links resolved, opened without
  following a link or blocking, checked with ``fstat``), naming its own stream, with a declared
  size the file really has and below ``max_file_bytes``;
- an upload only for vidflow's bucket and exactly the incoming key of its upload id; its size
  comes from the object, its owner from the object's owner metadata (written by the
  authenticated creator) or ``producer_owner``, never from the event.

A refused event becomes a dead letter with a short public reason; the detail goes to the log.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar
from urllib.parse import unquote

import msgspec
from minio import Minio
from minio.error import S3Error

from core import events as ev
from core.errors import public_reason
from core.layout import OWNER_METADATA, ObjectLayout, is_upload_id
from core.logs import get_logger
from core.roots import resolve_roots, resolve_under
from core.settings import Settings
from dataflows.ingest.files import RefusedFile, open_regular
from dataflows.ingest.sources import GONE_CODES
from dataflows.kafka_io import Inbound

__all__ = ["Admission", "Refused"]

log = get_logger("vidflow.ingest.admission")
T = TypeVar("T")
Retry = Callable[[str, Callable[[], T]], T]


class Refused(ValueError):
    """The event asks for something beyond its sender's grant; the text is public."""


class Admission:
    """Checks one decoded event: the event (for an upload, with its trusted owner and size) or
    the dead letter that says why not."""

    def __init__(self, settings: Settings, client: Minio, retry: Retry[object]) -> None:
        self.roots = resolve_roots(settings.ingest.roots(settings.home))
        self.max_bytes = settings.ingest.max_file_bytes
        self.producer_owner = settings.ingest.producer_owner
        self.bucket = settings.storage.bucket
        self.layout = ObjectLayout(settings.storage)
        self.client = client
        self.retry = retry

    def __call__(self, item: Inbound) -> Inbound | ev.DeadLetter:
        event = item.event
        try:
            if isinstance(event, ev.FileChanged | ev.FileClosed):
                self._check_file(event)
            elif isinstance(event, ev.FileDeleted):
                self._check_stream(event)
                if resolve_under(event.path, self.roots) is None:
                    raise Refused("the path is outside the watched roots")
            elif isinstance(event, ev.UploadCompleted):
                event = self._check_upload(event)
        except (Refused, RefusedFile) as exc:
            return self._refuse(item, str(exc))
        except (ValueError, OSError) as exc:  # a path the OS refuses (a NUL byte, too long...)
            log.warning("an ingest event could not be checked", error=repr(exc))
            return self._refuse(item, f"it cannot be checked: {type(exc).__name__}")
        if event is item.event:
            return item
        return Inbound(event, item.topic, item.partition, item.offset, raw=item.raw)

    def _refuse(self, item: Inbound, why: str) -> ev.DeadLetter:
        event = item.event
        log.warning(
            "refused an ingest event", type=event.type, key=event.partition_key, reason=why,
            topic=item.topic, partition=item.partition, offset=item.offset,
        )  # fmt: skip
        return ev.dead_letter(
            raw=item.raw or msgspec.json.encode(event), key=event.partition_key,
            topic=item.topic, stage="admit",
            partition=item.partition, offset=item.offset,
            error=public_reason(f"{event.type} refused", why),
        )  # fmt: skip

    # ---------------------------------------------------------------- file events

    def _check_stream(self, event: ev.FileChanged | ev.FileClosed | ev.FileDeleted) -> None:
        # the stream id keys the state a file's bytes go into: an event may only name its own
        if event.stream_id != f"{event.host}:{event.path}":
            raise Refused("the stream id does not name the event's host and path")

    def _check_file(self, event: ev.FileChanged | ev.FileClosed) -> None:
        self._check_stream(event)
        if event.size > self.max_bytes:
            raise Refused(f"the declared size is over the limit of {self.max_bytes} bytes")
        try:
            with open_regular(event.path, self.roots, inode=event.inode) as (_, facts):
                real_size = facts.st_size
        except FileNotFoundError:
            raise Refused("the file does not exist") from None
        if event.size > real_size:
            raise Refused(f"the declared size {event.size} is more than the file has")

    # ---------------------------------------------------------------- uploads

    def _check_upload(self, event: ev.UploadCompleted) -> ev.UploadCompleted:
        if event.bucket != self.bucket:
            raise Refused("the bucket is not vidflow's")
        if not is_upload_id(event.upload_id):
            raise Refused("the upload id is not a plain name")
        if event.key != self.layout.incoming(event.upload_id):
            raise Refused("the key is not the incoming key of the upload")
        try:
            found = self.retry("stat", lambda: self.client.stat_object(self.bucket, event.key))
        except S3Error as exc:
            if exc.code in GONE_CODES:
                # not the sender's overreach: the stream fails reading it, visibly, for its owner
                return msgspec.structs.replace(event, owner=self.producer_owner)
            # anything else the store says of this one key (transient codes were retried): this
            # message cannot be applied, and no message may stop the flow
            raise Refused(f"the store refused to describe the object: {exc.code}") from None
        size = int(getattr(found, "size", 0) or 0)
        if size != event.size:
            raise Refused(f"the declared size {event.size} is not the object's {size}")
        if size > self.max_bytes:
            raise Refused(f"the object is over the limit of {self.max_bytes} bytes")
        metadata = getattr(found, "metadata", None) or {}
        # S3 metadata travels in ASCII headers: the creator percent-encodes it (multipart.create)
        owner = unquote(metadata.get(f"x-amz-meta-{OWNER_METADATA}", "")) or self.producer_owner
        if event.owner and event.owner != owner:
            log.warning(
                "an upload event claims another owner; the object's is used",
                upload=event.upload_id, claimed=event.owner, owner=owner,
            )  # fmt: skip
        return msgspec.structs.replace(event, owner=owner)
