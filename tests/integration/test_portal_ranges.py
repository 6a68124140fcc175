"""The portal's file proxy answers byte ranges: HLS byte-range playlists (``EXT-X-BYTERANGE``)
and DASH ``SegmentBase`` representations fetch pieces of one fragmented MP4 with ``Range``, and
a player given 200 with the whole object for each piece downloads the rung again per segment."""

from __future__ import annotations

import io
import uuid
from pathlib import Path

import pytest
from litestar.testing import TestClient

from connectors.storage import make_client
from core.layout import ObjectLayout
from core.settings import Settings
from portal.app import create_app
from portal.projector import Projector
from portal.rebuild import replay_to_end
from tests.integration.test_portal import life_of, produce
from tests.media import h264_clip, remux
from tests.portal_login import log_in

pytestmark = pytest.mark.integration


def test_file_proxy_answers_range_requests_with_206(
    portal_settings: Settings, tmp_path: Path
) -> None:
    storage, video_id = portal_settings.storage, uuid.uuid4().hex
    layout = ObjectLayout(storage)
    clip = h264_clip(tmp_path / "clip.mp4", seconds=2)
    # one real fragmented MP4 of a rung, where the transcode flow puts a rung's media
    data = remux(clip, tmp_path / "240p.mp4", "-movflags", "frag_keyframe+empty_moov")
    size = len(data)
    key = layout.rendition(video_id, 240)
    make_client(storage).put_object(storage.bucket, key, io.BytesIO(data), size)
    produce(portal_settings, life_of(video_id, "ranges.mp4"))
    replay_to_end(Projector(portal_settings))
    url = f"/videos/{video_id}/files/{key}"
    with TestClient(app=create_app(portal_settings)) as browser:
        log_in(browser, portal_settings, "ops", "admin")

        whole = browser.get(url)
        assert whole.status_code == 200 and whole.content == data
        assert whole.headers["accept-ranges"] == "bytes"
        assert whole.headers["content-length"] == str(size)

        piece = browser.get(url, headers={"Range": "bytes=100-1099"})
        assert piece.status_code == 206
        assert piece.content == data[100:1100]
        assert piece.headers["content-range"] == f"bytes 100-1099/{size}"
        assert piece.headers["content-length"] == "1000"
        assert piece.headers["accept-ranges"] == "bytes"

        tail = browser.get(url, headers={"Range": "bytes=-64"})  # the last 64 bytes
        assert tail.status_code == 206 and tail.content == data[-64:]
        assert tail.headers["content-range"] == f"bytes {size - 64}-{size - 1}/{size}"

        rest = browser.get(url, headers={"Range": f"bytes={size - 10}-"})
        assert rest.status_code == 206 and rest.content == data[-10:]

        past = browser.get(url, headers={"Range": f"bytes={size - 5}-{size + 500}"})  # clipped
        assert past.status_code == 206 and past.content == data[-5:]
        assert past.headers["content-range"] == f"bytes {size - 5}-{size - 1}/{size}"

        beyond = browser.get(url, headers={"Range": f"bytes={size}-"})
        assert beyond.status_code == 416
        assert beyond.headers["content-range"] == f"bytes */{size}"

        # a form the proxy does not serve in pieces (several ranges, another unit, nonsense):
        # the whole object, as RFC 9110 lets a server ignore Range
        for ignored in ("bytes=0-1,5-9", "items=0-5", "bytes=abc", "bytes=9-3"):
            answer = browser.get(url, headers={"Range": ignored})
            assert answer.status_code == 200 and answer.content == data, ignored

        # a range never reaches past the video's own objects
        source = f"/videos/{video_id}/files/{layout.source(video_id)}"
        assert browser.get(source, headers={"Range": "bytes=0-9"}).status_code == 404
