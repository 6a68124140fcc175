"""A completed job's warnings reach ``vidflow submit --json`` (issue 9, obs. 11: a truncated
source must not complete silently)."""

from __future__ import annotations

from core import events as ev
from core.progress import VideoSummary, apply_event
from vidflow.submit import _document

RENDITION = ev.Rendition(height=240, width=320, key="renditions/v/240p.mp4", hls="hls/v/240p")
WARNING = "renditions shorter than the source (the source may be truncated): 240p 1.9 s"


def test_a_completed_job_carries_its_warnings_to_submit_json() -> None:
    summary = apply_event(
        VideoSummary(video_id="v"),
        ev.JobCompleted(id="1", seq=1, job_id="j", renditions=[RENDITION], master="m",
                        warnings=[WARNING], video_id="v", run="r"),
    )  # fmt: skip
    assert summary.status == "completed" and summary.warnings == [WARNING]
    document = _document(summary)
    assert document["status"] == "completed" and document["warnings"] == [WARNING]
    assert document["error"] is None


def test_a_clean_job_has_an_empty_list() -> None:
    summary = apply_event(
        VideoSummary(video_id="v"),
        ev.JobCompleted(
            id="1", seq=1, job_id="j", renditions=[RENDITION], master="m", video_id="v", run="r"
        ),
    )
    assert _document(summary)["warnings"] == []
