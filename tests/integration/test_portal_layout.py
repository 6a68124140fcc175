"""The portal serves a video's files from where the object layout puts them, not from a copy
of the default prefixes."""

from __future__ import annotations

import io
import uuid

import msgspec
import pytest
from litestar.testing import TestClient

from connectors.storage import make_client
from core.layout import ObjectLayout
from core.settings import Settings
from portal.app import create_app
from portal.projector import Projector
from portal.rebuild import replay_to_end
from tests.integration.test_portal import life_of, produce
from tests.portal_login import log_in

pytestmark = pytest.mark.integration


def test_video_files_are_served_from_the_configured_prefixes(portal_settings: Settings) -> None:
    storage = msgspec.structs.replace(
        portal_settings.storage, prefix_hls="media-hls", prefix_sources="media-src"
    )
    settings = msgspec.structs.replace(portal_settings, storage=storage)
    layout, video_id = ObjectLayout(storage), uuid.uuid4().hex
    client = make_client(storage)
    playlist, source = b"#EXTM3U\n#EXT-X-VERSION:7\n", b"the original bytes"
    for key, data in ((layout.hls_master(video_id), playlist), (layout.source(video_id), source)):
        client.put_object(storage.bucket, key, io.BytesIO(data), len(data))
    produce(settings, life_of(video_id, "moved.mp4"))
    replay_to_end(Projector(settings))
    with TestClient(app=create_app(settings)) as browser:
        log_in(browser, settings, "ops", "admin")
        served = browser.get(f"/videos/{video_id}/files/{layout.hls_master(video_id)}")
        assert served.status_code == 200 and served.content == playlist
        # the default prefix is nothing special once the layout moved it
        default = f"/videos/{video_id}/files/hls/{video_id}/master.m3u8"
        assert browser.get(default).status_code == 404
        # the source is never a playable file, wherever it lives
        assert browser.get(f"/videos/{video_id}/files/{layout.source(video_id)}").status_code == 404
