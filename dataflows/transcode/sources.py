"""Where a video's source bytes are: the key its manifest names, never one an event names.

A ``transcode.requested`` names the video's own source (``sources/{video}/source``, checked by
``validate.py``); the bytes may be elsewhere: the upload the video came from, or an identical
file's source (whole-file dedup). The manifest, written only by ingest in our bucket, is the
record; ``ObjectLayout.source_of`` accepts from it only keys the layout derives, so neither a
forged request nor a forged manifest points a video at arbitrary objects. A source stored by the
earlier layout (chunks composed into ``sources/{video}/source``, a manifest naming it or none)
reads as before.

Resolved keys are remembered per video: a manifest is written once and never repointed (a
delete keeps bytes another manifest names), and the encode step asks once per unit start.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import msgspec
from minio import Minio

from connectors.storage import read_object
from core.events import Manifest
from core.layout import ObjectLayout

__all__ = ["SourceLocator"]

REMEMBERED = 1024  # videos whose source key is kept


class SourceLocator:
    """The key holding a video's bytes, from its manifest (remembered, thread-safe)."""

    def __init__(self, client: Minio, bucket: str, layout: ObjectLayout) -> None:
        self.client = client
        self.bucket = bucket
        self.layout = layout
        self._known: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()

    def source_key(self, video_id: str, requested: str) -> str:
        """The key to read ``video_id``'s source from. ``requested`` is the request's key,
        already checked to be the video's own (``validate.py``): used when the video has no
        manifest (a source put there by hand or by a test)."""
        with self._lock:
            if video_id in self._known:
                self._known.move_to_end(video_id)
                return self._known[video_id]
        manifest = self._manifest(video_id)
        if manifest is None:  # not remembered: a reprocess may name a source key of its own
            return requested
        key = self.layout.source_of(manifest, video_id)
        with self._lock:
            self._known[video_id] = key
            while len(self._known) > REMEMBERED:
                self._known.popitem(last=False)
        return key

    def _manifest(self, video_id: str) -> Manifest | None:
        body = read_object(self.client, self.bucket, self.layout.manifest(video_id))
        return None if body is None else msgspec.json.decode(body, type=Manifest)
