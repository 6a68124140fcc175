"""FFmpeg progress parsing, throttling, failure classification, HLS text, command lines."""

from __future__ import annotations

from pathlib import Path

from core.events import Probe
from core.profiles import DEFAULT_LADDER
from dataflows.transcode.commands import encode_command
from dataflows.transcode.hls import MasterEntry, avc1_codec, master_playlist, sprite_vtt
from dataflows.transcode.ladder import plan_ladder
from dataflows.transcode.outputs import preview_inputs
from dataflows.transcode.progress import ProgressParser, ProgressThrottle
from dataflows.transcode.runner import classify_failure

BLOCK = "frame=50\nfps=25.0\nout_time_us=2000000\nspeed=1.5x\nprogress=continue\n"


def test_progress_blocks_become_readings_even_when_split() -> None:
    parser = ProgressParser(duration=8.0)
    assert parser.feed(BLOCK[:20]) == []
    (reading,) = parser.feed(BLOCK[20:])
    assert reading.percent == 25.0 and reading.fps == 25.0 and reading.speed == 1.5
    assert not reading.ended
    (last,) = parser.feed("out_time_us=N/A\nspeed=N/A\nprogress=end\n")
    assert last.ended and last.percent == 100.0


def test_percent_is_capped_and_zero_duration_is_safe() -> None:
    (over,) = ProgressParser(1.0).feed("out_time_us=5000000\nprogress=continue\n")
    assert over.percent == 100.0
    (unknown,) = ProgressParser(0.0).feed(BLOCK)
    assert unknown.percent == 0.0


def test_throttle_allows_about_one_per_second_and_always_the_end() -> None:
    throttle = ProgressThrottle(1.0)
    (reading,) = ProgressParser(8).feed(BLOCK)
    (end,) = ProgressParser(8).feed("progress=end\n")
    assert throttle.allow(reading, 10.0)
    assert not throttle.allow(reading, 10.5)
    assert throttle.allow(end, 10.6)
    assert throttle.allow(reading, 11.7)


def test_failure_classification() -> None:
    assert (
        classify_failure(1, "x: Invalid data found when processing input", False) == "deterministic"
    )
    assert classify_failure(-9, "", True) == "transient"
    assert classify_failure(1, "Connection refused", False) == "transient"


def test_master_playlist_lists_every_rung_highest_first() -> None:
    entries = [
        MasterEntry(240, 426, 240, 500_000, avc1_codec("High", 21, True), "240p/index.m3u8"),
        MasterEntry(720, 1280, 720, 3_000_000, avc1_codec("High", 31, True), "720p/index.m3u8"),
    ]
    text = master_playlist(entries)
    lines = text.splitlines()
    assert lines[0] == "#EXTM3U"
    assert 'BANDWIDTH=3000000,RESOLUTION=1280x720,CODECS="avc1.64001f,mp4a.40.2"' in lines[3]
    assert lines[4] == "720p/index.m3u8" and lines[-1] == "240p/index.m3u8"
    assert avc1_codec("Main", 30, False) == "avc1.4d001e"


def test_sprite_vtt_points_into_the_sheet() -> None:
    vtt = sprite_vtt(
        duration=25, interval=10, columns=2, thumb_w=160, thumb_h=90, sprite_uri="s.jpg"
    )
    assert vtt.startswith("WEBVTT")
    assert "00:00:00.000 --> 00:00:10.000\ns.jpg#xywh=0,0,160,90" in vtt
    assert "00:00:20.000 --> 00:00:25.000\ns.jpg#xywh=0,90,160,90" in vtt


def test_previews_come_from_small_rungs_not_the_top_one() -> None:
    ladder = {144: 256, 240: 426, 360: 640, 720: 1280, 1080: 1920}
    assert preview_inputs(ladder) == (720, 144)  # poster <= 720p; sprite >= 160 px wide
    assert preview_inputs({144: 256}) == (144, 144)
    assert preview_inputs({96: 128}) == (96, 96)  # nothing wide enough: the widest there is
    assert preview_inputs({1080: 1920, 2160: 3840}) == (1080, 1080)


def test_encode_command_decodes_once_for_every_rung(tmp_path: Path) -> None:
    probe = Probe(
        duration=10, width=1280, height=720, fps=30, has_audio=True, variable_frame_rate=True
    )
    planned = plan_ladder(probe, DEFAULT_LADDER)
    argv = encode_command("ffmpeg", "http://s/source", probe, planned, tmp_path)
    assert argv.count("-i") == 1
    graph = argv[argv.index("-filter_complex") + 1]
    # cascaded: the source is scaled once, to the top rung; each rung then feeds the next
    assert graph.startswith("[0:v]fps=30.000,scale=1280:720:")
    assert graph.count("scale=") == 5 and graph.count("[0:v]") == 1
    assert all(graph.count(f"[v{i}]") == 1 for i in range(5))
    assert "[c4]scale=854:480:" in graph  # 480p is made from 720p
    by_hand = encode_command("ffmpeg", "s", probe, planned, tmp_path, cascade=False)
    flat = by_hand[by_hand.index("-filter_complex") + 1]
    assert flat.startswith("[0:v]fps=30.000,split=5") and "[s4]scale=1280:720:" in flat
    assert argv[argv.index("-g") + 1] == "60"  # a keyframe every 2 s segment


def test_each_rung_is_one_fragmented_mp4_and_the_audio_is_encoded_once(tmp_path: Path) -> None:
    """Issue 12: one CMAF file per rung (no TS copy), the audio one track for the whole job."""
    probe = Probe(duration=10, width=1280, height=720, fps=30, has_audio=True)
    planned = plan_ladder(probe, DEFAULT_LADDER)
    argv = encode_command("ffmpeg", "s", probe, planned, tmp_path, audio_kbps=128)
    assert [a for a in argv if a.endswith(".mp4")] == [
        str(tmp_path / f"{r.label}p.mp4") for r in planned
    ] + [str(tmp_path / "audio.mp4")]
    assert argv.count("0:a:0") == 1 and argv.count("aac") == 1
    assert argv.count("fmp4") == len(planned) + 1 and argv.count("-an") == len(planned)
    assert argv.count("single_file+independent_segments") == len(planned) + 1
    assert not [a for a in argv if a.endswith(".ts")] and "+faststart" not in argv
    silent = encode_command("ffmpeg", "s", probe, planned[:1], tmp_path)
    assert "0:a:0" not in silent and not [a for a in silent if "audio" in a]
