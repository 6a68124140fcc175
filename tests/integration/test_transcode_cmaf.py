"""Issue 12 on real Kafka, MinIO and FFmpeg: one CMAF copy per rung, the audio once, HLS v7 and
DASH from the same byte ranges, and a playlist that plays while the rung still encodes."""

# ruff: noqa: F811 - the fixtures of test_transcode_flow are imported and taken as arguments

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import msgspec
import pytest
from minio.error import S3Error

from connectors.storage import make_client
from core import events as ev
from core.layout import ObjectLayout
from core.settings import Settings
from tests.cmaf import check_ladder, check_media, parse_master, parse_media
from tests.flows import FlowProcess, TopicReader
from tests.integration.test_transcode_flow import (  # noqa: F401 - fixtures
    completed,
    ffprobe_url,
    finished,
    flow,
    request_for,
    status,
    tc_settings,
)
from tests.media import h264_clip

pytestmark = pytest.mark.integration


def _keys(settings: Settings, video_id: str) -> list[str]:
    client, layout = make_client(settings.storage), ObjectLayout(settings.storage)
    return sorted(
        o.object_name or ""
        for prefix in layout.playable_prefixes(video_id)
        for o in client.list_objects(settings.storage.bucket, prefix, recursive=True)
    )


def test_one_cmaf_copy_per_rung_the_audio_once_and_hls_and_dash_by_byte_range(
    tc_settings: Settings, flow: FlowProcess, status: TopicReader, tmp_path: Path
) -> None:
    clip = h264_clip(tmp_path / "c.mp4", seconds=5, size="480x270")
    request = request_for(tc_settings, clip)
    status.wait_for(finished(request.video_id), 120, flow)
    done = completed(status.events, request.video_id)
    layout, video = ObjectLayout(tc_settings.storage), request.video_id
    client, bucket = make_client(tc_settings.storage), tc_settings.storage.bucket
    assert done.master == layout.hls_master(video)
    found = check_ladder(client, bucket, done.master, layout.dash_manifest(video))
    # the master and the MPD list exactly the rungs there are, with their real codecs
    variants = found["variants"]
    assert isinstance(variants, list)
    assert [v["RESOLUTION"] for v in variants] == ["426x240", "256x144"]
    by_uri = {r.hls.rsplit("/", 1)[1]: r for r in done.renditions}
    for v in variants:
        rendition = by_uri[v["URI"]]
        assert v["CODECS"] == f"{rendition.codecs},mp4a.40.2" and v["AUDIO"] == "aud"
    audio_groups: Any = found["audio"]
    assert [a["TYPE"] for a in audio_groups] == ["AUDIO"]
    reps = found["mpd"]
    assert isinstance(reps, list)
    assert sorted(str(r["id"]) for r in reps) == ["144p", "240p", "audio"]
    assert {str(r["codecs"]) for r in reps} == {r.codecs for r in done.renditions} | {"mp4a.40.2"}
    # one copy: one MP4 per rung, one audio track, playlists, MPD, previews; no TS, no temporaries
    assert _keys(tc_settings, video) == sorted([
        layout.rendition(video, 240), layout.rendition(video, 144), layout.audio(video),
        layout.hls_playlist(video, 240), layout.hls_playlist(video, 144),
        layout.audio_playlist(video), layout.hls_master(video), layout.dash_manifest(video),
        done.poster, done.sprite, done.sprite_vtt,
    ])  # fmt: skip
    # the download of a rung and the audio track play as they are
    for rendition in done.renditions:
        report: Any = ffprobe_url(tc_settings, rendition.key)
        assert [s["codec_name"] for s in report["streams"]] == ["h264"]
        # CODECS from the real SPS: x264's ultrafast makes Constrained Baseline even when asked
        # for High, so a profile taken from the command line would be wrong
        stream = report["streams"][0]
        idc = {"Constrained Baseline": "42c0", "Main": "4d00", "High": "6400"}[stream["profile"]]
        assert rendition.codecs == f"avc1.{idc}{stream['level']:02x}"
        assert float(report["format"]["duration"]) == pytest.approx(5.0, abs=0.1)
    sound: Any = ffprobe_url(tc_settings, layout.audio(video))
    assert [s["codec_name"] for s in sound["streams"]] == ["aac"]


def test_the_lowest_rung_plays_while_it_still_encodes(
    tc_settings: Settings, status: TopicReader, tmp_path: Path
) -> None:
    """Issue 12: the master lists a rung at its first fragment and its EVENT playlist grows in
    the bucket (temporaries, whole fragments), long before job.completed."""
    slow = msgspec.structs.replace(tc_settings.transcode, preset="medium", unit_mode="rung")
    settings = msgspec.structs.replace(tc_settings, transcode=slow)
    clip = h264_clip(tmp_path / "long.mp4", seconds=20, size="640x360")  # 10 fragments a rung
    client, bucket = make_client(settings.storage), settings.storage.bucket
    live: list[tuple[str, str]] = []
    with FlowProcess("dataflows.transcode_flow", settings, tmp_path / "flow") as running:
        request = request_for(settings, clip)
        layout = ObjectLayout(settings.storage)
        master = layout.hls_master(request.video_id)
        base = master.rsplit("/", 1)[0]
        deadline = time.monotonic() + 180
        while not finished(request.video_id)(status.events) and time.monotonic() < deadline:
            running.assert_running()
            try:
                text = client.get_object(bucket, master).read().decode()
                variants, _ = parse_master(text)
                lowest = client.get_object(bucket, f"{base}/{variants[-1]['URI']}").read()
                playlist = parse_media(lowest.decode())
                if playlist.segments and not playlist.ended and not live:
                    check_media(client, bucket, base, playlist)  # whole fragments, fetchable
                    live.append((text, lowest.decode()))
            except (S3Error, IndexError):
                pass
            status.poll(0.05)
        status.wait_for(finished(request.video_id), 10, running)
        live_at = [e for e in status.events if isinstance(e, ev.JobCompleted)]
    assert live, "no growing playlist was seen before job.completed"
    master_text, media_text = live[0]
    assert "144p.m3u8" in master_text and "#EXT-X-ENDLIST" not in media_text
    assert ".live/" in media_text  # temporaries while it encodes
    done = completed(status.events, request.video_id)
    assert live_at and done.master == master
    check_ladder(client, bucket, master, layout.dash_manifest(request.video_id))
    assert not [k for k in _keys(settings, request.video_id) if ".live/" in k or k.endswith(".ts")]
