"""Folding status events into a video summary (pure)."""

from __future__ import annotations

from core import events as ev
from core.progress import VideoSummary, apply_event

SHA = "cd" * 32
BASE = {"video_id": "v", "run": "r"}


def fold(*events: ev.AnyEvent) -> VideoSummary:
    summary = VideoSummary(video_id="v")
    for event in events:
        apply_event(summary, event)
    return summary


def test_a_successful_life() -> None:
    chunk = ev.ChunkRef(index=0, offset=0, size=10, sha256=SHA)
    manifest = ev.Manifest(video_id="v", size=10, chunks=[chunk], composite_sha256="x-1",
                           sha256=SHA, source_key="sources/v/source")  # fmt: skip
    rendition = ev.Rendition(height=240, width=320, key="renditions/v/240p.mp4", hls="hls/v/240p")
    summary = fold(
        ev.IngestStarted(id="1", seq=1, origin="upload", filename="a.mp4", **BASE),
        ev.ChunkStored(id="2", seq=2, chunk=chunk, bytes_so_far=10, **BASE),
        ev.IngestCompleted(id="3", seq=3, manifest=manifest, **BASE),
        ev.ProbeCompleted(id="4", seq=4, probe=ev.Probe(duration=1, width=320, height=240), **BASE),
        ev.UnitProgress(id="5", seq=1, job_id="j", unit="u1", percent=50, **BASE),
        ev.UnitProgress(id="6", seq=2, job_id="j", unit="u2", percent=100, **BASE),
    )
    assert summary.status == "transcoding" and summary.progress == 75.0
    assert summary.source is not None and summary.source.sha256 == SHA
    apply_event(summary, ev.JobCompleted(id="7", seq=3, job_id="j", renditions=[rendition],
                                         master="hls/v/master.m3u8", **BASE))  # fmt: skip
    assert summary.finished and summary.status == "completed" and summary.progress == 100.0
    assert summary.renditions == [rendition]


def test_failure_is_terminal_with_its_reason() -> None:
    summary = fold(
        ev.IngestStarted(id="1", seq=1, origin="watch", **BASE),
        ev.JobFailed(id="2", seq=2, reason="not a video", stage="probe", **BASE),
    )
    assert summary.finished and summary.status == "failed" and summary.error == "not a video"


def test_an_abandoned_version_ends_cancelled_naming_its_successor() -> None:
    summary = fold(
        ev.IngestStarted(id="1", seq=1, origin="watch", **BASE),
        ev.IngestRestarted(id="2", seq=2, reason="the file shrank; … as video v2", **BASE),
    )
    assert summary.finished and summary.status == "cancelled"
    assert summary.error is not None and "v2" in summary.error


def test_a_deleted_video_ends_the_wait_and_a_late_unit_event_never_reopens_a_job() -> None:
    """``vidflow submit --wait`` stops at ``video.deleted`` (it waited for its timeout before)
    and prints the same vocabulary as the portal; a unit's late progress stays ignored."""
    unit = {"job_id": "j", "unit": "144p", **BASE}
    done = fold(
        ev.UnitStarted(id="1", seq=1, heights=[144], **unit),
        ev.JobCompleted(id="2", seq=2, job_id="j", renditions=[], master="", **BASE),
        ev.UnitProgress(id="3", seq=3, percent=40, **unit),
    )
    assert (done.status, done.progress, done.finished) == ("completed", 100.0, True)
    gone = fold(ev.VideoDeleted(id="1", seq=1, **BASE))
    assert (gone.status, gone.finished) == ("deleted", True)
