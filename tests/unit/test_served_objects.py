"""The portal streams or signs only a video's own outputs, at the keys the layout derives."""

from __future__ import annotations

import pytest

from core.layout import ObjectLayout
from core.settings import StorageSettings
from portal.projection import is_served_object

LAYOUT = ObjectLayout(StorageSettings(prefix_renditions="r", prefix_hls="streams/hls"))
VIDEO = "3f2a"


@pytest.mark.parametrize(
    "key",
    [
        LAYOUT.rendition(VIDEO, 720),
        LAYOUT.hls_master(VIDEO),
        LAYOUT.hls_playlist(VIDEO, 240),
        LAYOUT.audio(VIDEO),
        LAYOUT.audio_playlist(VIDEO),
        LAYOUT.dash_manifest(VIDEO),
        LAYOUT.live_segment(VIDEO, "240p", "3.m4s"),
        LAYOUT.live_segment(VIDEO, "audio", "init.mp4"),
        LAYOUT.legacy_hls_master(VIDEO),  # a video made before CMAF keeps playing
        LAYOUT.legacy_hls_playlist(VIDEO, 240),
        f"{LAYOUT.legacy_hls_dir(VIDEO, 240)}/segment_00003.ts",
        LAYOUT.poster(VIDEO),
        LAYOUT.sprite_vtt(VIDEO),
    ],
)
def test_a_videos_own_outputs_are_served(key: str) -> None:
    assert is_served_object(LAYOUT, VIDEO, key)


@pytest.mark.parametrize(
    "key",
    [
        LAYOUT.source(VIDEO),  # the original is never handed out by this route
        LAYOUT.manifest(VIDEO),
        LAYOUT.rendition("another", 720),
        LAYOUT.incoming("upload-1"),
        f"renditions/{VIDEO}/720p.mp4",  # the default prefix, not this layout's
        f"r/{VIDEO}/../another/720p.mp4",
        f"r/{VIDEO}/./720p.mp4",
        f"r/{VIDEO}//720p.mp4",
        f"r/{VIDEO}/",
        f"r/{VIDEO}x/720p.mp4",
        f"streams/hls/{VIDEO}/240p/a b.m4s",
        f"/r/{VIDEO}/720p.mp4",
    ],
)
def test_anything_else_is_not(key: str) -> None:
    assert not is_served_object(LAYOUT, VIDEO, key)
