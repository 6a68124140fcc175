"""Remove every object of a deleted video (run in a child by ``collect``, never on a worker).

A video's own objects live under the layout's per-video prefixes (renditions, HLS, previews, the
source and its manifest) and, for an upload, under ``incoming/{upload}/`` (the bytes as
uploaded, which may be its source). Its bytes may be shared: an identical file's video names
the same source key (whole-file dedup), and a source of the earlier layout is made of
content-addressed chunks (``chunks/``) shared by every video whose bytes contain them. Shared
bytes go only when no other video's manifest names them. Whether another manifest names them is
read from the bucket (every ``sources/*/manifest.json``), not remembered, so a replayed delete
decides the same way and removes nothing more.
"""

from __future__ import annotations

import msgspec
from minio import Minio
from minio.error import S3Error

from connectors.storage import read_object
from core.events import Manifest
from core.ids import upload_video_id
from core.layout import ForeignSource, ObjectLayout
from core.logs import get_logger
from dataflows.source_index import SourceIndex

__all__ = ["purge_video"]

log = get_logger("vidflow.transcode")


def _manifest(client: Minio, bucket: str, key: str) -> Manifest | None:
    data = read_object(client, bucket, key)
    if data is None:
        return None
    try:
        return msgspec.json.decode(data, type=Manifest)
    except msgspec.MsgspecError:
        log.warning("unreadable manifest kept out of the chunk count", key=key)
        return None


def _used_by_others(
    client: Minio, bucket: str, layout: ObjectLayout, video_id: str
) -> tuple[set[str], set[str]]:
    """What any manifest but ``video_id``'s still uses: chunk digests (sources of the earlier
    layout) and the keys holding source bytes (an identical file's video names another's)."""
    own = layout.manifest(video_id)
    sources_root = layout.manifest("x").split("/", 1)[0] + "/"
    chunks: set[str] = set()
    keys: set[str] = set()
    for obj in client.list_objects(bucket, sources_root, recursive=True):
        key = obj.object_name or ""
        if key == own or not key.endswith("/manifest.json"):
            continue
        manifest = _manifest(client, bucket, key)
        if manifest is None:
            continue
        chunks.update(c.sha256 for c in manifest.chunks)
        try:
            keys.add(layout.source_of(manifest, manifest.video_id))
        except ForeignSource:
            log.warning("a manifest naming no source kept out of the count", key=key)
    return chunks, keys


def _uploaded(client: Minio, bucket: str, layout: ObjectLayout, video_id: str) -> list[str]:
    """The uploaded bytes the video was made from (``incoming/{upload}/``): an upload's video id
    is derived from its upload id, so those whose upload id derives ``video_id``."""
    root = layout.incoming_prefix()
    found = []
    for obj in client.list_objects(bucket, root, recursive=True):
        key = obj.object_name or ""
        upload_id = key[len(root) :].split("/", 1)[0]
        if upload_id and upload_video_id(upload_id) == video_id:
            found.append(key)
    return found


def _own_source(
    client: Minio, bucket: str, layout: ObjectLayout, manifest: Manifest | None, video_id: str
) -> str | None:
    """The key holding the video's bytes, its dedup entry dropped first if it names them (an
    identical file completing meanwhile then keeps its own bytes: ``dataflows/source_index``)."""
    if manifest is None:
        return None
    try:
        key = layout.source_of(manifest, video_id)
    except ForeignSource:
        return None
    index = SourceIndex(client, bucket, layout)
    if index.entry(manifest.sha256) == key:
        index.forget(manifest.sha256)
    return key


def _exists(client: Minio, bucket: str, key: str) -> bool:
    try:
        client.stat_object(bucket, key)
    except S3Error as exc:
        if exc.code in ("NoSuchKey", "NoSuchObject"):
            return False
        raise
    return True


def purge_video(client: Minio, bucket: str, layout: ObjectLayout, video_id: str) -> list[str]:
    """Remove every object of ``video_id`` but the bytes another video's manifest still names
    (its source, chunks of the earlier layout); the keys removed (none on a replay)."""
    manifest = _manifest(client, bucket, layout.manifest(video_id))
    source = _own_source(client, bucket, layout, manifest, video_id)
    used_chunks, used_keys = _used_by_others(client, bucket, layout, video_id)
    keys: list[str] = []
    if manifest is not None:
        for digest in sorted({c.sha256 for c in manifest.chunks} - used_chunks):
            if _exists(client, bucket, layout.chunk(digest)):
                keys.append(layout.chunk(digest))
    if manifest is not None and source is not None:
        if source in used_keys:  # still another video's: kept, and findable again
            SourceIndex(client, bucket, layout).remember(manifest.sha256, source)
        elif _exists(client, bucket, source):
            keys.append(source)
    keys += _uploaded(client, bucket, layout, video_id)
    for prefix in layout.video_prefixes(video_id):
        keys += [o.object_name or "" for o in client.list_objects(bucket, prefix, recursive=True)]
    keys = [k for k in dict.fromkeys(keys) if k not in used_keys]
    # the manifest last: a purge that dies half-way still finds the bytes on its next run
    keys.sort(key=lambda k: k == layout.manifest(video_id))
    for key in keys:
        client.remove_object(bucket, key)
    log.info("video objects removed", video=video_id, removed=len(keys))
    return keys
