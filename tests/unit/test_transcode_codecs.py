"""Encoder arguments by codec and the conversion command (pure; issue 12)."""

from __future__ import annotations

from pathlib import Path

import pytest

from core import events as ev
from core.profiles import BUILTIN_PROFILES, load_profiles
from dataflows.transcode.codecs import audio_codec_args, codec_args, video_codec_args
from dataflows.transcode.commands import encode_command
from dataflows.transcode.convert import convert_command, output_file, plan_conversion
from dataflows.transcode.ladder import PlannedRendition, plan_ladder
from portal.videos.access import download_name

RUNG = PlannedRendition(label=360, width=640, height=360, video_kbps=800, audio_kbps=96, audio=True)


def probe(width: int = 1280, height: int = 720, audio: bool = True) -> ev.Probe:
    return ev.Probe(duration=3.0, width=width, height=height, fps=25.0, has_audio=audio)


def _after(argv: list[str], flag: str) -> list[str]:
    return [argv[i + 1] for i, a in enumerate(argv) if a == flag]


def test_h264_arguments_are_todays_ladder_arguments() -> None:
    assert codec_args("h264", 800, 50, "veryfast") == [
        "-c:v", "libx264", "-preset", "veryfast", "-profile:v", "high", "-pix_fmt", "yuv420p",
        "-b:v", "800k", "-maxrate", "856k", "-bufsize", "1200k",
        "-g", "50", "-keyint_min", "50", "-sc_threshold", "0",
    ]  # fmt: skip


def test_hevc_is_tagged_hvc1_in_mp4_only_and_keeps_a_fixed_gop() -> None:
    mp4 = codec_args("hevc", 800, 50, "veryfast", "mp4")
    assert _after(mp4, "-c:v") == ["libx265"] and _after(mp4, "-tag:v") == ["hvc1"]
    assert "keyint=50:min-keyint=50:scenecut=0" in _after(mp4, "-x265-params")[0]
    assert "-tag:v" not in codec_args("hevc", 800, 50, "veryfast", "webm")


def test_av1_uses_svt_at_a_numeric_speed_and_vp9_runs_realtime() -> None:
    av1 = codec_args("av1", 500, 50, "ultrafast")
    assert _after(av1, "-c:v") == ["libsvtav1"] and _after(av1, "-preset") == ["12"]
    assert _after(av1, "-b:v") == ["500k"] and _after(av1, "-g") == ["50"]
    vp9 = codec_args("vp9", 500, 50)
    assert _after(vp9, "-c:v") == ["libvpx-vp9"]
    assert (_after(vp9, "-row-mt"), _after(vp9, "-deadline"), _after(vp9, "-cpu-used")) == (
        ["1"], ["realtime"], ["8"],
    )  # fmt: skip


@pytest.mark.parametrize(
    ("codec", "encoder"), [("aac", "aac"), ("opus", "libopus"), ("mp3", "libmp3lame")]
)
def test_audio_arguments(codec: str, encoder: str) -> None:
    assert audio_codec_args(codec, 128) == ["-c:a", encoder, "-b:a", "128k", "-ac", "2"]  # type: ignore[arg-type]


def test_a_hevc_ladder_encodes_every_rung_with_x265() -> None:
    profile = BUILTIN_PROFILES["hevc-ladder"]
    planned = plan_ladder(probe(), profile.rungs)
    argv = encode_command("ffmpeg", "in", probe(), planned, Path("/w"), profile=profile)
    assert _after(argv, "-c:v") == ["libx265"] * len(planned)
    assert video_codec_args(profile, planned[0], 50)[:2] == ["-c:v", "libx265"]
    default = encode_command("ffmpeg", "in", probe(), planned, Path("/w"))
    assert _after(default, "-c:v") == ["libx264"] * len(planned)  # no profile: H.264 as before


def test_a_single_conversion_keeps_the_source_size_or_scales_down_to_the_asked_one() -> None:
    same = plan_conversion(probe(1280, 720), BUILTIN_PROFILES["webm-vp9"])
    assert (same.width, same.height, same.label) == (1280, 720, 720)
    small = load_profiles(
        '{"s": {"kind": "single", "height": 360}, "u": {"kind": "single", "height": 1080}}'
    )
    down = plan_conversion(probe(720, 1280), small["s"])  # portrait: the short side is the width
    assert (down.width, down.height) == (360, 640)
    up = plan_conversion(probe(1280, 720), small["u"])
    assert (up.width, up.height) == (1280, 720)  # never scaled up


def test_an_audio_profile_on_a_silent_source_cannot_be_planned() -> None:
    with pytest.raises(ValueError, match="no audio"):
        plan_conversion(probe(audio=False), BUILTIN_PROFILES["audio-mp3"])
    planned = plan_conversion(probe(), BUILTIN_PROFILES["audio-mp3"])
    assert (planned.label, planned.width, planned.height, planned.audio_kbps) == (0, 0, 0, 192)


def test_the_conversion_command_writes_one_file_of_the_profile() -> None:
    webm = BUILTIN_PROFILES["webm-vp9"]
    argv = convert_command(
        "ffmpeg", "in", probe(), plan_conversion(probe(), webm), webm, Path("/w")
    )
    assert argv[-1] == str(output_file(Path("/w"), webm)) == "/w/output.webm"
    assert _after(argv, "-c:v") == ["libvpx-vp9"] and _after(argv, "-c:a") == ["libopus"]
    assert "-movflags" not in argv  # fast start is an MP4 thing
    mp3 = BUILTIN_PROFILES["audio-mp3"]
    audio = convert_command("ffmpeg", "in", probe(), plan_conversion(probe(), mp3), mp3, Path("/w"))
    assert "-vn" in audio and "-c:v" not in audio and audio[-1] == "/w/output.mp3"
    silent = BUILTIN_PROFILES["mp4-h264"]
    mute = plan_conversion(probe(audio=False), silent)
    quiet = convert_command("ffmpeg", "in", probe(audio=False), mute, silent, Path("/w"))
    assert "-an" in quiet and "-c:a" not in quiet and _after(quiet, "-movflags") == ["+faststart"]


def test_a_download_is_named_by_the_output_type() -> None:
    assert download_name("My holiday.avi", 720, "renditions/v/720p.mp4") == "My_holiday-720p.mp4"
    assert download_name("clip.mov", 90, "renditions/v/webm-vp9.webm") == "clip-90p.webm"
    assert download_name("clip.mov", 0, "renditions/v/audio-mp3.mp3") == "clip.mp3"
    assert download_name("clip.mov", 240) == "clip-240p.mp4"
