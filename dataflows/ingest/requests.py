"""The request a completed stream sends on: ``transcode.requested`` for its video."""

from __future__ import annotations

from core import events as ev
from core.layout import ObjectLayout
from dataflows.ingest.completion import Finished
from dataflows.ingest.state import StreamState

__all__ = ["transcode_request"]


def transcode_request(
    bucket: str, layout: ObjectLayout, state: StreamState, done: Finished
) -> ev.TranscodeRequested:
    """The transcode request of a completed, probed stream. Its ids derive from the video id,
    so a replayed completion asks for the same job (the transcode flow drops the duplicate).

    The source named is always the video's own source key: where the bytes really are (an
    upload's object, another video's identical source) is the manifest's to say, and the
    transcode flow reads it there, so an event can never point a video at foreign bytes.
    """
    assert done.probe is not None
    return ev.TranscodeRequested(
        id=ev.event_id("transcode.requested", state.video_id, "ingest"),
        video_id=state.video_id,
        job_id=ev.event_id("job", state.video_id, "ingest"),
        source=ev.SourceRef(
            bucket=bucket,
            key=layout.source(state.video_id),
            size=done.manifest.size,
            sha256=done.sha256,
        ),
        probe=done.probe,
        profile=state.profile,
        reason="ingest",
        filename=state.filename,
        owner=state.owner,
    )
