"""Deleting a video from the portal: owner or admin only, a confirmed button and
``DELETE /api/videos/{id}`` (202), both producing ``video.delete`` on ``vidflow.jobs``."""

from __future__ import annotations

import pytest
from litestar.testing import TestClient

from core import events as ev
from core.settings import Settings
from portal.app import create_app
from tests.flows import TopicReader
from tests.integration.test_portal_auth import add_video
from tests.integration.test_portal_uploads import bearer
from tests.portal_login import csrf_headers, log_in

TOKEN_USER_PASSWORD = "correct horse battery"  # what ``bearer`` gives the users it makes

pytestmark = pytest.mark.integration


def test_only_the_owner_or_an_admin_deletes_a_video(portal_settings: Settings) -> None:
    settings = portal_settings
    mine, theirs = add_video(settings, "uma", "uma.mp4"), add_video(settings, "vic", "vic.mp4")
    jobs = TopicReader(settings, settings.kafka.topic_jobs)
    with TestClient(app=create_app(settings)) as client:
        uma = bearer(settings, "uma", "uploader")
        refused = client.delete(f"/api/videos/{theirs}", headers=uma)
        assert refused.status_code == 404  # someone else's video is as missing as none
        viewer = bearer(settings, "val", "viewer")
        assert client.delete(f"/api/videos/{theirs}", headers=viewer).status_code == 403
        accepted = client.delete(f"/api/videos/{mine}", headers=uma)
        assert accepted.status_code == 202, accepted.text
        body = accepted.json()
        assert body["video_id"] == mine and body["delete_id"]
        admin = bearer(settings, "root", "admin")
        assert client.delete(f"/api/videos/{theirs}", headers=admin).status_code == 202

        client.cookies.clear()
        log_in(client, settings, "uma", "uploader", create=False, password=TOKEN_USER_PASSWORD)
        page = client.get(f"/videos/{mine}").text
        assert f'hx-post="/videos/{mine}/delete"' in page and "hx-confirm=" in page
        headers = {**csrf_headers(client), "HX-Request": "true"}
        clicked = client.post(f"/videos/{mine}/delete", headers=headers)
        assert clicked.status_code == 202 and clicked.headers["HX-Redirect"] == "/"
        assert client.post(f"/videos/{theirs}/delete", headers=headers).status_code == 404
        client.cookies.clear()
        log_in(client, settings, "vic", "viewer")
        assert "/delete" not in client.get(f"/videos/{theirs}").text  # a viewer sees no button
    events = jobs.wait_for(lambda es: len(es) >= 3, timeout=30)
    jobs.close()
    deletes = [e for e in events if isinstance(e, ev.VideoDelete)]
    asked = sorted((d.video_id, d.requested_by) for d in deletes)  # partitions: no order
    assert asked == sorted([(mine, "uma"), (theirs, "root"), (mine, "uma")])
    assert body["delete_id"] in {d.id for d in deletes}
