"""One status fold: the CLI's :func:`core.progress.apply_event` and the portal's projection read
the same event sequences as the same status, progress and error, event after event."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest
from sqlalchemy import create_engine, select

from core import events as ev
from core.layout import ObjectLayout
from core.progress import VideoSummary, apply_event
from core.settings import Settings
from portal.models import Video
from portal.projection import apply

pytestmark = pytest.mark.integration

VIDEO, JOB = "v-fold", "job-fold"
PROBE = ev.Probe(duration=10.0, width=640, height=360, video_codec="h264")


def _sequence(
    *steps: tuple[str, Callable[..., ev.StatusBase], dict[str, object]],
) -> list[ev.StatusBase]:
    """Events with ids and per-run sequence numbers filled in (each unit is its own run)."""
    seqs: dict[str, itertools.count[int]] = {}
    out: list[ev.StatusBase] = []
    for n, (run, kind, fields) in enumerate(steps):
        seq = next(seqs.setdefault(run, itertools.count(1)))
        out.append(kind(id=f"e{n}", video_id=VIDEO, run=run, seq=seq, **fields))
    return out


def _unit(
    unit: str, percent: float | None = None
) -> tuple[str, Callable[..., ev.StatusBase], dict[str, object]]:
    if percent is None:
        return (f"{JOB}:{unit}", ev.UnitStarted, {"job_id": JOB, "unit": unit, "heights": [144]})
    return (f"{JOB}:{unit}", ev.UnitProgress, {"job_id": JOB, "unit": unit, "percent": percent})


INGEST = ("ingest-1", ev.IngestStarted, {"origin": "upload", "filename": "a.mp4"})
PROBED = ("ingest-1", ev.ProbeCompleted, {"probe": PROBE})
DONE = (
    JOB,
    ev.JobCompleted,
    {"job_id": JOB, "renditions": [], "master": "", "warnings": ["audio dropped"]},
)

SEQUENCES: dict[str, list[ev.StatusBase]] = {
    "normal": _sequence(
        INGEST, PROBED, _unit("a"), _unit("a", 40), _unit("b"), _unit("b", 20),
        _unit("a", 100), _unit("b", 100), DONE,
    ),
    "failed": _sequence(
        INGEST, PROBED, _unit("a"), _unit("a", 30),
        (JOB, ev.JobFailed, {"job_id": JOB, "reason": "the encoder crashed"}),
    ),
    "cancelled": _sequence(
        INGEST, PROBED, _unit("a"), _unit("a", 10), (JOB, ev.JobCancelled, {"job_id": JOB}),
    ),
    "restarted": _sequence(
        INGEST, ("ingest-1", ev.IngestRestarted, {"reason": "the file shrank"}),
    ),
    "late unit event after completion": _sequence(
        INGEST, PROBED, _unit("a"), _unit("a", 50), DONE, _unit("a", 100), _unit("b"),
    ),
    "out-of-order units": _sequence(
        INGEST, PROBED, _unit("b"), _unit("b", 60), _unit("a"), _unit("a", 20),
        _unit("b", 80), _unit("a", 40), _unit("a"), _unit("a", 10),
    ),
}  # fmt: skip


def _cli_row(summary: VideoSummary) -> tuple[str, float, str]:
    """What the CLI shows: a completed job's warnings stand where the error would."""
    shown = "; ".join(summary.warnings) if summary.status == "completed" else summary.error or ""
    return (str(summary.status), summary.progress, shown)


@pytest.mark.parametrize("name", list(SEQUENCES))
def test_the_cli_fold_and_the_projection_agree_event_after_event(
    name: str, portal_settings: Settings
) -> None:
    events = SEQUENCES[name]
    layout = ObjectLayout(portal_settings.storage)
    engine = create_engine(portal_settings.postgres.url)
    summary = VideoSummary(video_id=VIDEO)
    projected: list[tuple[str, float, str]] = []
    folded: list[tuple[str, float, str]] = []
    try:
        for event in events:
            with engine.begin() as conn:
                assert apply(conn, event, layout)
                row = conn.execute(select(Video.status, Video.progress, Video.error)).one()
            projected.append((row.status, row.progress, row.error or ""))
            folded.append(_cli_row(apply_event(summary, event)))
    finally:
        engine.dispose()
    assert folded == projected
    assert projected[-1][0] in {"completed", "failed", "cancelled", "transcoding"}
