"""The transcode bench's reading of playlists and manifests (bench/playable.py) and its figures
(bench/figures.py): first playable must mean what a player needs, in both layouts."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.figures import encoded_bytes, phases, rung_of, stored_per_encoded
from bench.playable import (
    Piece,
    dash_playable,
    hls_playable,
    parse_master,
    parse_media,
    parse_mpd,
    resolve,
)
from core import events as ev
from tests.media import cmaf_ladder

MASTER_CMAF = """#EXTM3U
#EXT-X-VERSION:7
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud",NAME="audio",DEFAULT=YES,URI="audio.m3u8"
#EXT-X-STREAM-INF:BANDWIDTH=473896,RESOLUTION=426x240,CODECS="avc1.42c015,mp4a.40.2",AUDIO="aud"
240p.m3u8

#EXT-X-STREAM-INF:BANDWIDTH=221776,RESOLUTION=256x144,AUDIO="aud"
144p.m3u8
"""
MEDIA_CMAF = """#EXTM3U
#EXT-X-VERSION:7
#EXT-X-PLAYLIST-TYPE:EVENT
#EXT-X-TARGETDURATION:2
#EXT-X-MAP:URI="240p.mp4",BYTERANGE="827@0"
#EXTINF:2.000,
#EXT-X-BYTERANGE:67556@827
240p.mp4
#EXTINF:2.000,
#EXT-X-BYTERANGE:50955
240p.mp4
"""
AUDIO_CMAF = """#EXTM3U
#EXT-X-MAP:URI="audio.mp4",BYTERANGE="700@0"
#EXTINF:2.000,
#EXT-X-BYTERANGE:9000@700
audio.mp4
"""
MASTER_TS = """#EXTM3U
#EXT-X-STREAM-INF:BANDWIDTH=800000,RESOLUTION=426x240
240p/index.m3u8
"""
MEDIA_TS = """#EXTM3U
#EXT-X-TARGETDURATION:4
#EXTINF:4.0,
seg000.ts
#EXTINF:4.0,
seg001.ts
#EXT-X-ENDLIST
"""
NS = 'xmlns="urn:mpeg:dash:schema:mpd:2011"'
MPD_LIST = f"""<?xml version="1.0"?><MPD {NS} type="static"><Period>
<AdaptationSet contentType="video">
 <Representation id="0" mimeType="video/mp4" bandwidth="400000" width="426" height="240">
  <BaseURL>240p.mp4</BaseURL>
  <SegmentList><Initialization range="0-826"/><SegmentURL mediaRange="827-68382"/></SegmentList>
 </Representation></AdaptationSet>
<AdaptationSet contentType="audio">
 <Representation id="a" mimeType="audio/mp4" bandwidth="69000"><BaseURL>audio.mp4</BaseURL>
  <SegmentBase indexRange="700-751"><Initialization range="0-699"/></SegmentBase>
 </Representation></AdaptationSet>
</Period></MPD>"""
MPD_TEMPLATE = f"""<MPD {NS}><Period><AdaptationSet mimeType="video/mp4">
<SegmentTemplate initialization="init-$RepresentationID$.m4s"
                 media="chunk-$RepresentationID$-$Number%05d$.m4s" startNumber="1"/>
<Representation id="0" bandwidth="1"/></AdaptationSet></Period></MPD>"""


class FakeStore:
    """The bucket as a dict of key → bytes."""

    def __init__(self, objects: dict[str, bytes]) -> None:
        self.objects = objects

    def text(self, key: str) -> str | None:
        data = self.objects.get(key)
        return data.decode() if data is not None else None

    def has(self, piece: Piece) -> bool:
        data = self.objects.get(piece.uri)
        if data is None:
            return False
        if piece.length is None:
            return len(data) > 0
        return len(data) >= piece.offset + piece.length


def test_master_playlist_names_variants_and_their_audio_group() -> None:
    master = parse_master(MASTER_CMAF)
    assert [(v.uri, v.audio) for v in master.variants] == [
        ("240p.m3u8", "aud"),
        ("144p.m3u8", "aud"),
    ]
    assert master.audio == {"aud": ["audio.m3u8"]}
    assert [v.uri for v in parse_master(MASTER_TS).variants] == ["240p/index.m3u8"]


def test_media_playlist_byte_ranges_follow_on_without_an_offset() -> None:
    init, segments = parse_media(MEDIA_CMAF)
    assert init == Piece("240p.mp4", 0, 827)
    assert segments == [Piece("240p.mp4", 827, 67556), Piece("240p.mp4", 68383, 50955)]
    init, segments = parse_media(MEDIA_TS)
    assert init is None and segments == [Piece("seg000.ts"), Piece("seg001.ts")]


def test_mpd_first_pieces_for_segment_list_base_and_template() -> None:
    video, audio = parse_mpd(MPD_LIST)
    assert (video.kind, video.init, video.first) == (
        "video", Piece("240p.mp4", 0, 827), Piece("240p.mp4", 827, 67556)
    )  # fmt: skip
    # SegmentBase: init, then one byte past the index (the first fragment has begun)
    assert (audio.kind, audio.init, audio.first) == (
        "audio", Piece("audio.mp4", 0, 700), Piece("audio.mp4", 752, 1)
    )  # fmt: skip
    (templated,) = parse_mpd(MPD_TEMPLATE)
    assert templated.kind == "video"
    assert templated.init == Piece("init-0.m4s")
    assert templated.first == Piece("chunk-0-00001.m4s")


def test_resolve_stays_in_the_bucket() -> None:
    assert resolve("hls/v/master.m3u8", "240p/index.m3u8") == "hls/v/240p/index.m3u8"
    assert resolve("hls/v/240p/index.m3u8", "../240p.mp4") == "hls/v/240p.mp4"
    assert resolve("hls/v/master.m3u8", "https://elsewhere/x.m3u8") is None
    assert resolve("a.m3u8", "../../etc/passwd") is None


def _cmaf(media_bytes: int, audio: bool = True) -> dict[str, bytes]:
    objects = {
        "hls/v/master.m3u8": MASTER_CMAF.encode(),
        "hls/v/240p.m3u8": MEDIA_CMAF.encode(),
        "hls/v/240p.mp4": b"x" * media_bytes,
    }
    if audio:
        objects |= {"hls/v/audio.m3u8": AUDIO_CMAF.encode(), "hls/v/audio.mp4": b"a" * 9700}
    return objects


def test_hls_playable_needs_the_first_segments_bytes_and_its_audio() -> None:
    assert hls_playable(FakeStore(_cmaf(827 + 67556)), "hls/v/master.m3u8")
    # the playlist names a segment whose bytes are not (all) stored yet
    assert not hls_playable(FakeStore(_cmaf(827 + 67555)), "hls/v/master.m3u8")
    # the video is there, its audio group's playlist is not
    assert not hls_playable(FakeStore(_cmaf(827 + 67556, audio=False)), "hls/v/master.m3u8")
    assert not hls_playable(FakeStore({}), "hls/v/master.m3u8")


def test_hls_playable_in_the_segment_per_file_layout() -> None:
    objects = {"hls/v/master.m3u8": MASTER_TS.encode(), "hls/v/240p/index.m3u8": MEDIA_TS.encode()}
    assert not hls_playable(FakeStore(objects), "hls/v/master.m3u8")
    objects["hls/v/240p/seg000.ts"] = b"\x47" * 188
    assert hls_playable(FakeStore(objects), "hls/v/master.m3u8")


def test_dash_playable_needs_every_content_type() -> None:
    objects = {"hls/v/manifest.mpd": MPD_LIST.encode(), "hls/v/240p.mp4": b"x" * 68383}
    assert not dash_playable(FakeStore(objects), "hls/v/manifest.mpd")  # no audio yet
    objects["hls/v/audio.mp4"] = b"a" * 752  # init and index, no media yet
    assert not dash_playable(FakeStore(objects), "hls/v/manifest.mpd")
    objects["hls/v/audio.mp4"] = b"a" * 753
    assert dash_playable(FakeStore(objects), "hls/v/manifest.mpd")


def test_rungs_and_bytes_stored_per_encoded_byte() -> None:
    assert rung_of("240p.mp4") == rung_of("240p/seg003.ts") == "240p"
    assert rung_of("1080p.m3u8") == "1080p" and rung_of("audio.mp4") == "audio"
    older = {"240p.mp4": 1000, "240p/seg0.ts": 540, "240p/seg1.ts": 520, "240p/index.m3u8": 40}
    assert encoded_bytes(older) == 1000
    assert stored_per_encoded(older) == pytest.approx(2.1)
    cmaf = {"240p.mp4": 1000, "240p.m3u8": 10, "audio.mp4": 100, "master.m3u8": 5}
    assert stored_per_encoded(cmaf) == pytest.approx(1115 / 1100)
    with pytest.raises(ValueError, match="no encoded media"):
        stored_per_encoded({"master.m3u8": 5})


def test_phases_from_status_events() -> None:
    common = {"video_id": "v", "run": "job-v", "job_id": "job-v"}
    rendition = ev.Rendition(height=240, width=426, key="r/v/240p.mp4", hls="h/v/240p.m3u8")
    events: list[ev.AnyEvent] = [
        ev.UnitStarted(id="1", seq=1, ts=101.0, unit="u", heights=[240], **common),
        ev.RenditionCompleted(id="2", seq=2, ts=104.5, rendition=rendition, **common),
        ev.JobCompleted(id="3", seq=3, ts=105.0, renditions=[rendition], master="m", **common),
    ]
    assert phases(events, requested_at=100.0) == pytest.approx(
        {"queue_and_start": 1.0, "rung_240p": 3.5, "publish": 0.5, "total": 5.0}
    )
    assert phases(events[:2], requested_at=100.0) == {}


def test_playable_on_ffmpegs_own_cmaf_ladder(tmp_path: Path) -> None:
    ladder = cmaf_ladder(tmp_path)
    objects = {f"hls/v/{p.name}": p.read_bytes() for p in ladder.iterdir()}
    store = FakeStore(objects)
    assert hls_playable(store, "hls/v/master.m3u8")
    assert dash_playable(store, "hls/v/manifest.mpd")
    tracks = parse_mpd(objects["hls/v/manifest.mpd"].decode())
    assert sorted(t.kind for t in tracks) == ["audio", "video", "video"]
    # only the init sections of the rungs are stored so far: neither is playable yet
    for name in ("rung-0.mp4", "rung-1.mp4", "rung-2.mp4"):
        objects[f"hls/v/{name}"] = objects[f"hls/v/{name}"][:700]
    assert not hls_playable(store, "hls/v/master.m3u8")
    assert not dash_playable(store, "hls/v/manifest.mpd")
    stored = {key.removeprefix("hls/v/"): len(data) for key, data in objects.items()}
    assert encoded_bytes(stored) == sum(
        len(p.read_bytes()[:700]) for p in ladder.iterdir() if p.suffix == ".mp4"
    )


def test_phases_the_flow_reports_itself() -> None:
    """The flow's own timings ride on its status events: one figure per phase per rung, the
    publishing child's start-up (its wall time less its own work) and the previews."""
    common = {"video_id": "v", "run": "job-v", "job_id": "job-v"}
    low = ev.Rendition(height=240, width=426, key="r/v/240p.mp4", hls="h/v/240p.m3u8")
    high = ev.Rendition(height=720, width=1280, key="r/v/720p.mp4", hls="h/v/720p.m3u8")
    unit = {"queued": 0.1, "first_segment": 1.25, "encode": 3.0, "publish": 0.5,
            "publish_wall": 0.75}  # fmt: skip
    events: list[ev.AnyEvent] = [
        ev.UnitStarted(id="1", seq=1, ts=101.0, unit="u", heights=[720, 240], **common),
        ev.RenditionCompleted(id="2", seq=2, ts=104.5, rendition=high, phases=unit, **common),
        ev.RenditionCompleted(id="3", seq=3, ts=104.5, rendition=low, phases=unit, **common),
        ev.JobCompleted(
            id="4",
            seq=4,
            ts=106.0,
            renditions=[high, low],
            master="m",
            phases={"previews": 1.25},
            **common,
        ),
    ]
    figures = phases(events, requested_at=100.0)
    for rung in ("240p", "720p"):
        assert figures[f"flow_{rung}_first_segment"] == pytest.approx(1.25)
        assert figures[f"flow_{rung}_encode"] == pytest.approx(3.0)
        assert figures[f"flow_{rung}_publish_wall"] == pytest.approx(0.75)
        assert figures[f"flow_{rung}_child_startup"] == pytest.approx(0.25)
    assert figures["flow_previews"] == pytest.approx(1.25)
    assert figures["total"] == pytest.approx(6.0)
