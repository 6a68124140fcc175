"""Remove every object of a deleted video (run in a child by ``collect``, never on a worker).

A video's own objects live under the layout's per-video prefixes (renditions, HLS, previews, the
source and its manifest) and, for an upload, under ``incoming/{upload}/`` (the bytes as
uploaded). Its source bytes may also be content-addressed chunks (``chunks/``),
shared by every video whose bytes contain them: a chunk goes only when no other video's
manifest lists it. Whether another manifest lists it is read from the bucket (every
``sources/*/manifest.json``), not remembered, so a replayed delete decides the same way and
removes nothing more.
"""

from __future__ import annotations

import msgspec
from minio import Minio
from minio.error import S3Error

from core.events import Manifest
from core.ids import upload_video_id
from core.layout import ObjectLayout
from core.logs import get_logger

__all__ = ["purge_video"]

log = get_logger("vidflow.transcode")


def _manifest(client: Minio, bucket: str, key: str) -> Manifest | None:
    try:
        response = client.get_object(bucket, key)
    except S3Error as exc:
        if exc.code in ("NoSuchKey", "NoSuchObject"):
            return None
        raise
    try:
        data = response.read()
    finally:
        response.close()
        response.release_conn()
    try:
        return msgspec.json.decode(data, type=Manifest)
    except msgspec.MsgspecError:
        log.warning("unreadable manifest kept out of the chunk count", key=key)
        return None


def _chunks_of_others(client: Minio, bucket: str, layout: ObjectLayout, video_id: str) -> set[str]:
    """Digests of the chunks listed by any manifest but ``video_id``'s."""
    own = layout.manifest(video_id)
    sources_root = layout.manifest("x").split("/", 1)[0] + "/"
    used: set[str] = set()
    for obj in client.list_objects(bucket, sources_root, recursive=True):
        key = obj.object_name or ""
        if key == own or not key.endswith("/manifest.json"):
            continue
        manifest = _manifest(client, bucket, key)
        if manifest is not None:
            used.update(c.sha256 for c in manifest.chunks)
    return used


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


def purge_video(client: Minio, bucket: str, layout: ObjectLayout, video_id: str) -> list[str]:
    """Remove every object of ``video_id`` (chunks only when no other video uses them); the
    keys removed (none when there was nothing left, as on a replay)."""
    keys: list[str] = []
    manifest = _manifest(client, bucket, layout.manifest(video_id))
    if manifest is not None:
        others = _chunks_of_others(client, bucket, layout, video_id)
        for digest in sorted({c.sha256 for c in manifest.chunks} - others):
            key = layout.chunk(digest)
            try:
                client.stat_object(bucket, key)
            except S3Error as exc:
                if exc.code in ("NoSuchKey", "NoSuchObject"):
                    continue
                raise
            keys.append(key)
    keys += _uploaded(client, bucket, layout, video_id)
    for prefix in layout.video_prefixes(video_id):
        keys += [o.object_name or "" for o in client.list_objects(bucket, prefix, recursive=True)]
    # the manifest last: a purge that dies half-way still finds the chunks on its next run
    keys.sort(key=lambda k: k == layout.manifest(video_id))
    for key in keys:
        client.remove_object(bucket, key)
    log.info("video objects removed", video=video_id, removed=len(keys))
    return keys
