"""The portal and conversion profiles (issue 12): the upload form offers each profile with its
description, and a conversion's one output, projected from its job.completed, is a download
(real PostgreSQL, MinIO and the real app)."""

from __future__ import annotations

import html
import io
import re
import uuid

import httpx
import pytest
from litestar.testing import TestClient
from sqlalchemy import create_engine

from connectors.storage import close_client, make_client
from core import events as ev
from core.layout import ObjectLayout
from core.profiles import BUILTIN_PROFILES
from core.settings import Settings
from portal.app import create_app
from portal.projection import Rejected, apply
from tests.portal_login import log_in

pytestmark = pytest.mark.integration


def test_the_upload_form_offers_each_profile_with_its_description(
    portal_settings: Settings,
) -> None:
    with TestClient(app=create_app(portal_settings)) as client:
        log_in(client, portal_settings, "ivy", "uploader")
        page = html.unescape(client.get("/upload").text)
    for name, profile in BUILTIN_PROFILES.items():
        assert f'<option value="{name}"' in page
        assert f"{name} — {profile.description}</option>" in page


def test_a_conversion_output_is_projected_and_offered_as_a_download(
    portal_settings: Settings,
) -> None:
    video = uuid.uuid4().hex
    layout = ObjectLayout(portal_settings.storage)
    key = layout.converted(video, "webm-vp9", "webm")
    body = b"\x1a\x45\xdf\xa3" + bytes(2000)
    store = make_client(portal_settings.storage)
    store.put_object(portal_settings.storage.bucket, key, io.BytesIO(body), len(body))
    close_client(store)
    output = ev.Rendition(height=90, width=160, key=key, hls="", codecs="vp9,opus")
    done = ev.JobCompleted(id="c", video_id=video, run="job-1", seq=1, job_id="job-1",
                           renditions=[output], master="")  # fmt: skip
    foreign = ev.Rendition(height=90, width=160, key=f"renditions/{video}x/a.webm", hls="")
    engine = create_engine(portal_settings.postgres.url)
    try:
        with engine.begin() as conn:
            assert apply(conn, done, layout)  # a conversion key the layout derives is accepted
        with engine.begin() as conn:  # one that is not this video's is not
            stray = ev.JobCompleted(id="s", video_id=video, run="job-2", seq=1, job_id="job-2",
                                    renditions=[foreign], master="")  # fmt: skip
            with pytest.raises(Rejected, match="not this video's"):
                apply(conn, stray, layout)
    finally:
        engine.dispose()
    with TestClient(app=create_app(portal_settings)) as client:
        log_in(client, portal_settings, "ops", "admin")
        page = client.get(f"/videos/{video}").text
    assert "webm-vp9.webm (160\u00d790)" in page  # its file name and size, no HLS link
    links = re.findall(r'<a href="([^"]+)" rel="noreferrer">download</a>', page)
    assert len(links) == 1 and f"/{key}?" in links[0]
    with httpx.Client(timeout=30) as browser:
        got = browser.get(links[0].replace("&amp;", "&"))
    assert got.status_code == 200 and got.content == body
    assert got.headers["content-disposition"] == f'attachment; filename="{video}-90p.webm"'
