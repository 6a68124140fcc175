"""Every key through the object layout: a prefix moved in the settings moves every user of it."""

from __future__ import annotations

from connectors.storage import incoming_upload_rule
from core.layout import ObjectLayout
from core.settings import load_settings

MOVED = {
    "VIDFLOW_STORAGE_PREFIX_INCOMING": "uploads-in",
    "VIDFLOW_STORAGE_PREFIX_HLS": "media-hls",
    "VIDFLOW_STORAGE_PREFIX_RENDITIONS": "media-mp4",
    "VIDFLOW_STORAGE_PREFIX_THUMBS": "media-thumbs",
}


def test_the_incomplete_upload_rule_sweeps_the_configured_incoming_prefix() -> None:
    storage = load_settings(MOVED).storage
    rule = incoming_upload_rule(storage)
    assert rule.rule_filter is not None
    assert rule.rule_filter.prefix == "uploads-in/"
    assert ObjectLayout(storage).incoming("u1").startswith(rule.rule_filter.prefix)


def test_playable_prefixes_follow_the_settings_and_never_include_the_source() -> None:
    layout = ObjectLayout(load_settings(MOVED).storage)
    prefixes = layout.playable_prefixes("v1")
    assert prefixes == ("media-hls/v1/", "media-mp4/v1/", "media-thumbs/v1/")
    playable = [
        layout.hls_master("v1"),
        layout.hls_playlist("v1", 240),
        layout.rendition("v1", 240),
        layout.audio("v1"),
        layout.audio_playlist("v1"),
        layout.dash_manifest("v1"),
        layout.live_segment("v1", "240p", "0.m4s"),
        layout.legacy_hls_master("v1"),
        layout.legacy_hls_playlist("v1", 240),
        layout.poster("v1"),
        layout.sprite_vtt("v1"),
    ]
    assert [key for key in playable if not key.startswith(prefixes)] == []
    private = [
        layout.source("v1"),
        layout.manifest("v1"),
        layout.incoming("v1"),
        layout.hls_master("v10"),
        layout.dash_manifest("v10"),
        layout.legacy_hls_master("v10"),
    ]
    assert [key for key in private if key.startswith(prefixes)] == []
