"""Building a ``transcode.requested`` for a video already ingested: its verified source, a ladder.

The portal's Reprocess button, its API, its bulk "reprocess failed" button and
``vidflow replay reprocess`` all build the request here, so a job asked for by a person, a
program or an operator is the same event. Pure: no Kafka, no database; callers send it.

A reprocess is a *new job*: its ``job_id`` is derived from the video and the moment it was
asked for, so the transcode flow (which drops a request whose ``job_id`` it has seen) runs it,
and its outputs land under the same keys with the same content as before (idempotent outputs),
plus any rung the profile gained since.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from core import events as ev
from core.layout import ObjectLayout
from core.settings import Settings

__all__ = ["JobRequestError", "NoVerifiedSource", "UnknownProfile", "reprocess_request"]


class JobRequestError(ValueError):
    """A job that cannot be requested; the text is safe to show."""


class NoVerifiedSource(JobRequestError):
    """The video has no verified source (or no probe) yet: nothing to transcode from."""


class UnknownProfile(JobRequestError):
    """The profile asked for is not configured."""


def reprocess_request(
    settings: Settings,
    *,
    video_id: str,
    source_key: str,
    size: int,
    sha256: str,
    probe: Mapping[str, Any] | ev.Probe | None,
    profile: str = "",
    filename: str = "",
    owner: str = "",
    stamp: float | None = None,
) -> ev.TranscodeRequested:
    """A ``transcode.requested`` (reason ``reprocess``, a fresh job id) for a verified source.

    ``profile`` empty means the default one. ``stamp`` (default: now) makes the ids: two calls
    at different moments are two jobs, the same call sent twice is one.
    """
    if not source_key or probe is None:
        raise NoVerifiedSource(f"video {video_id} has no verified source yet")
    chosen = profile or settings.transcode.default_profile
    if chosen not in settings.transcode.profiles:
        raise UnknownProfile(f"unknown profile {chosen!r}")
    moment = ev.now() if stamp is None else stamp
    # a request names the video's own source; the flow reads the bytes where its manifest says
    # (the upload, or an identical file's source), so a shared source is named as the video's
    base = ObjectLayout(settings.storage).source(video_id)
    own = source_key if source_key.startswith(base) else base
    return ev.TranscodeRequested(
        id=ev.event_id("reprocess", video_id, moment),
        video_id=video_id,
        job_id=ev.event_id("job", video_id, "reprocess", moment),
        source=ev.SourceRef(bucket=settings.storage.bucket, key=own, size=size, sha256=sha256),
        probe=probe if isinstance(probe, ev.Probe) else msgspec.convert(probe, ev.Probe),
        profile=chosen,
        reason="reprocess",
        filename=filename,
        owner=owner,
        ts=moment,
    )
