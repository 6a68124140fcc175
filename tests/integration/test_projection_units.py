"""The projection of a job whose units run on several workers (one status run per unit)."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, select

from core import events as ev
from core.layout import ObjectLayout
from core.settings import Settings
from portal.models import Video
from portal.projection import apply

pytestmark = pytest.mark.integration


def test_video_progress_is_the_mean_of_its_units_and_a_late_unit_event_changes_nothing(
    portal_settings: Settings,
) -> None:
    video, job = "v-units", "job-units"
    low, high = f"{job}:144p", f"{job}:240p"
    s = {"video_id": video, "job_id": job}
    layout = ObjectLayout(portal_settings.storage)
    rendition = ev.Rendition(
        height=144, width=256, key=layout.rendition(video, 144),
        hls=layout.hls_playlist(video, 144),
    )  # fmt: skip
    events: list[ev.StatusBase] = [
        ev.UnitStarted(id="a1", run=low, seq=1, unit="144p", heights=[144], **s),
        ev.UnitStarted(id="b1", run=high, seq=1, unit="240p", heights=[240], **s),
        ev.UnitProgress(id="a2", run=low, seq=2, unit="144p", percent=100, **s),
        ev.UnitProgress(id="b2", run=high, seq=2, unit="240p", percent=50, **s),
        ev.JobCompleted(
            id="done", run=job, seq=1, renditions=[rendition], master=layout.hls_master(video), **s
        ),
        ev.UnitProgress(id="b3", run=high, seq=3, unit="240p", percent=100, **s),  # late
    ]
    engine = create_engine(portal_settings.postgres.url)
    seen: list[tuple[str, float]] = []
    try:
        for event in events:
            with engine.begin() as conn:
                assert apply(conn, event, layout)
                row = conn.execute(select(Video.status, Video.progress)).one()
                seen.append((row.status, row.progress))
    finally:
        engine.dispose()
    assert seen == [
        ("transcoding", 0.0),
        ("transcoding", 0.0),
        ("transcoding", 50.0),  # one unit done, the other not begun
        ("transcoding", 75.0),
        ("completed", 100.0),
        ("completed", 100.0),  # a unit's late progress does not reopen the job
    ]
