"""Ids derived from facts, so every component (and every replay) derives the same ones.

A video's id is never chosen by a sender: a watched file's comes from the message that started
its version, an upload's from its upload id. Producers (the portal, ``vidflow submit``) and the
ingest flow import these and nothing else to agree on them.
"""

from __future__ import annotations

from core import events as ev

__all__ = ["upload_completed", "upload_video_id", "video_id_for"]


def video_id_for(stream_id: str, topic: str, partition: int, offset: int) -> str:
    """A watched file's video id: derived from the message that started the version, so a
    replay derives the same and a file that grows after completion becomes a new video."""
    return ev.event_id("video", stream_id, topic, partition, offset)


def upload_video_id(upload_id: str) -> str:
    """An upload's video id: from the upload id alone, so a producer that announces the same
    upload twice (a retry after a flush timeout) still makes one video, and the announcer knows
    the id without waiting for the event's offset."""
    return ev.event_id("video", "upload", upload_id)


def upload_completed(
    upload_id: str, *, bucket: str, key: str, size: int, filename: str, owner: str, profile: str
) -> ev.UploadCompleted:
    """The announcement of an upload already in the bucket; its id follows from the upload id,
    so an announcement sent twice is recognisably the same event."""
    return ev.UploadCompleted(
        id=ev.event_id("upload.completed", upload_id), upload_id=upload_id, bucket=bucket,
        key=key, size=size, filename=filename, owner=owner, profile=profile,
    )  # fmt: skip
