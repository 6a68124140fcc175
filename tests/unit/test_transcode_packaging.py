"""Issue 12, pure side: FFmpeg's byte-range playlist read back, the playlists and MPD written
from it (parsed again as a player would), the codec string from the init's avcC box."""

from __future__ import annotations

import subprocess
from pathlib import Path

from connectors.ffmpeg import ffmpeg_binary, probe
from dataflows.transcode.commands import encode_command
from dataflows.transcode.dash import DashTrack, dash_manifest
from dataflows.transcode.hls import MasterEntry, master_playlist
from dataflows.transcode.ladder import PlannedRendition
from dataflows.transcode.packaging import (
    Segment,
    Track,
    avc1_from_init,
    byterange_playlist,
    live_playlist,
    parse_media_playlist,
    peak_bandwidth,
    video_codec_from_init,
)
from tests.cmaf import boxes, check_fragment, check_init, parse_master, parse_media, parse_mpd
from tests.media import h264_clip

FFMPEG_PLAYLIST = """#EXTM3U
#EXT-X-VERSION:7
#EXT-X-TARGETDURATION:2
#EXT-X-MEDIA-SEQUENCE:0
#EXT-X-PLAYLIST-TYPE:EVENT
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-MAP:URI="240p.mp4",BYTERANGE="830@0"
#EXTINF:2.000000,
#EXT-X-BYTERANGE:63750@830
240p.mp4
#EXTINF:1.000000,
#EXT-X-BYTERANGE:37345@64580
240p.mp4
"""

VIDEO = MasterEntry(240, 426, 240, 600_000, "avc1.64001e", "240p.m3u8", media="240p.mp4")
LOW = MasterEntry(144, 256, 144, 250_000, "avc1.42c015", "144p.m3u8", media="144p.mp4")
AUDIO = MasterEntry(0, 0, 0, 130_000, "mp4a.40.2", "audio.m3u8", kind="audio", media="audio.mp4")


def test_ffmpegs_growing_playlist_is_read_as_byte_ranges_into_one_file() -> None:
    track = parse_media_playlist(FFMPEG_PLAYLIST)
    assert track == Track(830, (Segment(2.0, 830, 63750), Segment(1.0, 64580, 37345)), False)
    assert track.size == 64580 + 37345 and track.duration == 3.0
    closed = parse_media_playlist(FFMPEG_PLAYLIST + "#EXT-X-ENDLIST\n")
    assert closed is not None and closed.ended
    assert parse_media_playlist("#EXTM3U\n#EXTINF:2,\nsegment_00000.ts\n") is None  # old TS
    assert peak_bandwidth(track) == 37345 * 8  # the densest fragment: 1 s of 37345 bytes


def test_the_published_playlists_are_v7_byte_ranges_or_live_temporaries() -> None:
    track = parse_media_playlist(FFMPEG_PLAYLIST + "#EXT-X-ENDLIST\n")
    assert track is not None
    final = parse_media(byterange_playlist(track, "240p.mp4"))
    assert final.version == 7 and final.event and final.ended
    assert final.map == ("240p.mp4", 0, 830)
    assert final.segments == [("240p.mp4", 830, 63750), ("240p.mp4", 64580, 37345)]
    growing = Track(track.init_length, track.segments, ended=False)
    live = parse_media(live_playlist(growing, "240p.live/init.mp4", lambda n: f"240p.live/{n}.m4s"))
    assert live.event and not live.ended and live.map == ("240p.live/init.mp4", 0, -1)
    assert [uri for uri, _, _ in live.segments] == ["240p.live/0.m4s", "240p.live/1.m4s"]


def test_master_lists_each_rung_once_with_the_one_audio_group() -> None:
    variants, audio = parse_master(master_playlist([LOW, AUDIO, VIDEO]))
    assert "#EXT-X-VERSION:7" in master_playlist([VIDEO])
    assert [v["URI"] for v in variants] == ["240p.m3u8", "144p.m3u8"]  # highest first
    assert [v["RESOLUTION"] for v in variants] == ["426x240", "256x144"]
    assert [v["CODECS"] for v in variants] == ["avc1.64001e,mp4a.40.2", "avc1.42c015,mp4a.40.2"]
    assert [v["BANDWIDTH"] for v in variants] == ["730000", "380000"]  # the audio counted
    assert {v["AUDIO"] for v in variants} == {"aud"}
    assert audio == [
        {"TYPE": "AUDIO", "GROUP-ID": "aud", "NAME": "audio", "DEFAULT": "YES",
         "AUTOSELECT": "YES", "CHANNELS": "2", "URI": "audio.m3u8"}
    ]  # fmt: skip
    silent, none = parse_master(master_playlist([VIDEO]))
    assert none == [] and "AUDIO" not in silent[0] and silent[0]["CODECS"] == "avc1.64001e"


def test_the_mpd_names_the_same_byte_ranges_as_the_hls_playlists() -> None:
    track = parse_media_playlist(FFMPEG_PLAYLIST + "#EXT-X-ENDLIST\n")
    assert track is not None
    reps = parse_mpd(dash_manifest([DashTrack(VIDEO, track), DashTrack(AUDIO, track)]))
    assert [(r["id"], r["type"], r["codecs"]) for r in reps] == [
        ("240p", "video", "avc1.64001e"), ("audio", "audio", "mp4a.40.2"),
    ]  # fmt: skip
    video = reps[0]
    assert (video["width"], video["height"], video["base"]) == ("426", "240", "240p.mp4")
    assert video["init"] == (0, 830)
    assert video["media"] == [(830, 63750), (64580, 37345)] and video["timeline"] == 2


def test_ffmpeg_writes_whole_fragments_and_the_codec_comes_from_the_sps(tmp_path: Path) -> None:
    """What FFmpeg 5.1's hls muxer really writes: one MP4 (init, then a fragment per segment)
    whose every playlist range is whole boxes; avc1.PPCCLL read from its avcC box."""
    clip = h264_clip(tmp_path / "c.mp4", seconds=5, size="320x180")
    found = probe(str(clip))
    rung = PlannedRendition(144, 256, 144, 200, 64, True)
    out = tmp_path / "out"
    out.mkdir()
    argv = encode_command(ffmpeg_binary(), str(clip), found, [rung], out, "medium", audio_kbps=64)
    subprocess.run([a for a in argv if a not in ("-progress", "pipe:1")], check=True)
    for name in ("144p", "audio"):
        track = parse_media_playlist((out / f"{name}.m3u8").read_text())
        assert track is not None and track.ended and len(track.segments) == 3
        data = (out / f"{name}.mp4").read_bytes()
        assert len(data) == track.size  # the file is the init and the fragments, nothing else
        check_init(data[: track.init_length])
        for s in track.segments:
            check_fragment(data[s.offset : s.offset + s.length])
    init = (out / "144p.mp4").read_bytes()[:1000]
    assert boxes(init[: init.index(b"moov") - 4]) == ["ftyp"]
    assert avc1_from_init(init) == "avc1.64000c"  # High (medium preset), level 1.2
    assert avc1_from_init(b"\x00" * 40) == ""


def test_a_hevc_rung_gets_its_hvc1_codec_string_from_its_hvcc_box(tmp_path: Path) -> None:
    """An HEVC ladder's master must say ``hvc1.…`` (hls.js and Safari skip a variant whose
    CODECS is wrong or missing); read from the init's ``hvcC`` as RFC 6381 / ISO 14496-15 say."""
    clip = h264_clip(tmp_path / "c.mp4", seconds=2, size="320x180")
    out = tmp_path / "out"
    out.mkdir()
    subprocess.run(
        [ffmpeg_binary(), "-v", "error", "-i", str(clip), "-an", "-c:v", "libx265",
         "-preset", "ultrafast", "-tag:v", "hvc1", "-x265-params", "log-level=error",
         "-f", "hls", "-hls_segment_type", "fmp4", "-hls_flags", "single_file",
         "-hls_playlist_type", "vod", "-hls_segment_filename", str(out / "r.mp4"),
         str(out / "r.m3u8")],
        check=True,
    )  # fmt: skip
    init = (out / "r.mp4").read_bytes()[:4000]
    # Main profile (1), compatibility flags 0x60000000 reversed = 6, Main tier, level 2 (60)
    assert video_codec_from_init(init) == "hvc1.1.6.L60.90"
    assert video_codec_from_init(b"\x00" * 40) == ""
