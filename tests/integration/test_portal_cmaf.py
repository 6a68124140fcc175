"""Issue 12 in the portal: byte-range GETs through the file route (HLS EXT-X-BYTERANGE, DASH
mediaRange), the video page reaching the CMAF master and its MPD, an old TS video still served."""

from __future__ import annotations

import io
import uuid

import pytest
from litestar.testing import TestClient

from connectors.storage import make_client
from core import events as ev
from core.layout import ObjectLayout
from core.settings import Settings
from portal.app import create_app
from portal.projector import Projector
from portal.rebuild import replay_to_end
from tests.integration.test_portal import life_of, produce
from tests.portal_login import log_in

pytestmark = pytest.mark.integration


def _put(settings: Settings, key: str, data: bytes) -> None:
    make_client(settings.storage).put_object(
        settings.storage.bucket, key, io.BytesIO(data), len(data)
    )


def _cmaf_life(settings: Settings, video_id: str) -> list[ev.Event]:
    """A video made with the CMAF layout (``life_of`` is one made before it)."""
    layout, job = ObjectLayout(settings.storage), f"job-{video_id}"
    events = life_of(video_id, "new.mp4")[:-3]  # its ingest
    rendition = ev.Rendition(
        height=240, width=426, key=layout.rendition(video_id, 240),
        hls=layout.hls_playlist(video_id, 240), codecs="avc1.64001e",
    )  # fmt: skip
    return [
        *events,
        ev.JobCompleted(id=f"{job}:done", run=job, seq=1, job_id=job, renditions=[rendition],
                        master=layout.hls_master(video_id), video_id=video_id),
    ]  # fmt: skip


def test_byte_ranges_are_answered_with_206_and_only_those_bytes(portal_settings: Settings) -> None:
    layout, video_id = ObjectLayout(portal_settings.storage), uuid.uuid4().hex
    body = bytes(range(256)) * 40
    _put(portal_settings, layout.rendition(video_id, 240), body)
    produce(portal_settings, _cmaf_life(portal_settings, video_id))
    replay_to_end(Projector(portal_settings))
    url = f"/videos/{video_id}/files/{layout.rendition(video_id, 240)}"
    with TestClient(app=create_app(portal_settings)) as browser:
        log_in(browser, portal_settings, "ops", "admin")
        part = browser.get(url, headers={"Range": "bytes=830-1829"})
        assert part.status_code == 206 and part.content == body[830:1830]
        assert part.headers["content-range"] == f"bytes 830-1829/{len(body)}"
        tail = browser.get(url, headers={"Range": "bytes=10000-"})
        assert tail.status_code == 206 and tail.content == body[10000:]
        whole = browser.get(url)
        assert whole.status_code == 200 and whole.content == body
        assert whole.headers["accept-ranges"] == "bytes"
        # the video page plays the CMAF master and names the MPD beside it
        page = browser.get(f"/videos/{video_id}").text
        assert f'data-src="/videos/{video_id}/files/{layout.hls_master(video_id)}"' in page
        assert f'data-dash="/videos/{video_id}/files/{layout.dash_manifest(video_id)}"' in page


def test_a_video_made_before_cmaf_still_plays(portal_settings: Settings) -> None:
    """Its TS master, media playlist and segments (``hls/{video}/…``) and its MP4 are served; its
    page plays its own master and names no MPD."""
    video_id = uuid.uuid4().hex
    layout = ObjectLayout(portal_settings.storage)
    old = {
        layout.legacy_hls_master(video_id): b"#EXTM3U\n240p/index.m3u8\n",
        layout.legacy_hls_playlist(video_id, 240): b"#EXTM3U\nsegment_00000.ts\n",
        f"{layout.legacy_hls_dir(video_id, 240)}/segment_00000.ts": b"G" * 188,
        layout.rendition(video_id, 240): b"an old fast-start mp4",
    }
    for key, data in old.items():
        _put(portal_settings, key, data)
    produce(portal_settings, life_of(video_id, "old.mp4"))  # the old layout's keys
    replay_to_end(Projector(portal_settings))
    with TestClient(app=create_app(portal_settings)) as browser:
        log_in(browser, portal_settings, "ops", "admin")
        for key, data in old.items():
            served = browser.get(f"/videos/{video_id}/files/{key}")
            assert served.status_code == 200 and served.content == data, key
        page = browser.get(f"/videos/{video_id}").text
        assert f'data-src="/videos/{video_id}/files/{layout.legacy_hls_master(video_id)}"' in page
        assert "data-dash" not in page


def test_the_page_plays_the_growing_master_before_the_job_completes(
    portal_settings: Settings,
) -> None:
    layout, video_id = ObjectLayout(portal_settings.storage), uuid.uuid4().hex
    job = f"job-{video_id}"
    running = [
        *life_of(video_id, "live.mp4")[:-3],
        ev.UnitStarted(id=f"{job}:1", run=f"{job}:144p", seq=1, job_id=job, unit="144p",
                       heights=[144], video_id=video_id),
    ]  # fmt: skip
    produce(portal_settings, running)
    replay_to_end(Projector(portal_settings))
    with TestClient(app=create_app(portal_settings)) as browser:
        log_in(browser, portal_settings, "ops", "admin")
        assert 'id="player"' not in browser.get(f"/videos/{video_id}").text  # nothing up yet
        _put(portal_settings, layout.hls_master(video_id), b"#EXTM3U\n#EXT-X-VERSION:7\n")
        page = browser.get(f"/videos/{video_id}").text
        assert f'data-src="/videos/{video_id}/files/{layout.hls_master(video_id)}"' in page
