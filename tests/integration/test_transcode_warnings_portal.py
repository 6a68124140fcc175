"""A completed job's warnings (a truncated source, issue 9 obs. 11) are visible: projected with the
video, shown on its page and in its timeline, and the next clean job clears them (real
PostgreSQL, the real app)."""

from __future__ import annotations

import uuid

import pytest
from litestar.testing import TestClient
from sqlalchemy import create_engine, select

from core import events as ev
from core.layout import ObjectLayout
from core.settings import Settings
from portal.app import create_app
from portal.models import Video
from portal.projection import apply
from tests.portal_login import log_in

pytestmark = pytest.mark.integration

WARNING = "renditions shorter than the source (the source may be truncated): 240p 1.9 s of 3.0 s"


def test_a_completed_job_with_a_warning_shows_it_and_a_clean_one_clears_it(
    portal_settings: Settings,
) -> None:
    video = uuid.uuid4().hex
    rendition = ev.Rendition(height=240, width=426, key=f"renditions/{video}/240p.mp4",
                             hls=f"hls/{video}/240p/index.m3u8")  # fmt: skip
    master = f"hls/{video}/master.m3u8"
    warned = ev.JobCompleted(id="w", video_id=video, run="job-1", seq=1, job_id="job-1",
                             renditions=[rendition], master=master, warnings=[WARNING])  # fmt: skip
    clean = ev.JobCompleted(id="c", video_id=video, run="job-2", seq=1, job_id="job-2",
                            renditions=[rendition], master=master)  # fmt: skip
    layout = ObjectLayout(portal_settings.storage)
    engine = create_engine(portal_settings.postgres.url)
    try:
        with engine.begin() as conn:
            assert apply(conn, warned, layout)
        with TestClient(app=create_app(portal_settings)) as client:
            log_in(client, portal_settings, "ops", "admin")
            page = client.get(f"/videos/{video}")
            assert page.status_code == 200
            assert f'<p class="warning">{WARNING}</p>' in page.text
            assert f"warning: {WARNING}" in page.text  # the timeline entry says so too
        with engine.begin() as conn:
            assert apply(conn, clean, layout)
            row = conn.execute(select(Video.status, Video.error).where(Video.id == video)).one()
    finally:
        engine.dispose()
    assert (row.status, row.error) == ("completed", "")
