"""Profiles say what a job makes (issue 12, format conversion): the model, its validation at
settings load, the encoders each needs, and the refusal of one the installed FFmpeg lacks."""

from __future__ import annotations

import json

import pytest

from connectors.ffmpeg import ProfileUnsupported, parse_encoders, usable_profiles
from core.profiles import BUILTIN_PROFILES, DEFAULT_LADDER, Profile, load_profiles
from core.settings import SettingsError, load_settings

# What `ffmpeg -hide_banner -encoders` prints, cut down: DATA, not a fake of FFmpeg
ENCODERS_WITHOUT_AV1 = """Encoders:
 V..... = Video
 A..... = Audio
 ------
 V....D libx264              libx264 H.264 / AVC / MPEG-4 AVC / MPEG-4 part 10 (codec h264)
 V....D libx265              libx265 H.265 / HEVC (codec hevc)
 V....D libvpx-vp9           libvpx VP9 (codec vp9)
 A..... aac                  AAC (Advanced Audio Coding)
 A....D libmp3lame           libmp3lame MP3 (MPEG audio layer 3) (codec mp3)
 A..... libopus              libopus Opus (codec opus)
"""


def _load(profiles: dict[str, object]) -> dict[str, Profile]:
    return load_profiles(json.dumps(profiles))


def test_a_list_of_rungs_is_still_a_ladder() -> None:
    profiles = _load(
        {"small": [{"height": 144, "video_kbps": 150}, {"height": 360, "video_kbps": 700}]}
    )
    small = profiles["small"]
    assert (small.kind, small.video_codec, small.container) == ("ladder", "h264", "mp4")
    assert [r.height for r in small.rungs] == [360, 144]
    assert profiles["default"].rungs == DEFAULT_LADDER


def test_a_full_profile_from_json() -> None:
    asked = {"kind": "single", "video_codec": "vp9", "container": "webm", "audio_codec": "opus"}
    clip = _load({"clip": {**asked, "height": 480, "description": "Small WebM"}})["clip"]
    assert (clip.kind, clip.video_codec, clip.extension, clip.height) == (
        "single",
        "vp9",
        "webm",
        480,
    )
    assert clip.encoders == ("libvpx-vp9", "libopus")
    assert clip.description == "Small WebM"


RUNGS = [{"height": 144, "video_kbps": 100}]
SINGLE, AUDIO, LADDER = {"kind": "single"}, {"kind": "audio"}, {"kind": "ladder", "rungs": RUNGS}
IMPOSSIBLE = [
    ({**SINGLE, "video_codec": "h264", "container": "webm", "audio_codec": "opus"}, "VP9 or AV1"),
    ({**SINGLE, "video_codec": "vp9", "container": "webm", "audio_codec": "aac"}, "Opus audio"),
    ({**SINGLE, "container": "ogg", "audio_codec": "opus"}, "Ogg holds audio only"),
    ({**AUDIO, "container": "webm", "audio_codec": "mp3"}, "WebM carries Opus"),
    ({**LADDER, "video_codec": "vp9"}, "not VP9"),
    ({**LADDER, "container": "webm", "audio_codec": "opus"}, "CMAF"),
    ({"kind": "ladder"}, "no rungs"),
    ({**SINGLE, "rungs": RUNGS}, "only a ladder"),
    ({**SINGLE, "video_codec": "mpeg2"}, "video_codec"),
    ({**SINGLE, "description": "x" * 121}, "description"),
]


@pytest.mark.parametrize(("profile", "reason"), IMPOSSIBLE)
def test_impossible_profiles_are_refused_at_settings_load(
    profile: dict[str, object], reason: str
) -> None:
    raw = json.dumps({"bad": profile})
    with pytest.raises(SettingsError, match="VIDFLOW_TRANSCODE_PROFILES_JSON") as refused:
        load_settings({"VIDFLOW_TRANSCODE_PROFILES_JSON": raw})
    assert reason in str(refused.value)


def test_a_profile_name_must_be_one_key_segment() -> None:
    with pytest.raises(SettingsError, match="profile name"):
        load_settings({"VIDFLOW_TRANSCODE_PROFILES_JSON": json.dumps({"a/b": {"kind": "audio"}})})


@pytest.mark.parametrize(
    ("codec", "container", "extension"),
    [
        ("mp3", "mp4", "mp3"),
        ("aac", "mp4", "m4a"),
        ("opus", "mp4", "ogg"),
        ("opus", "webm", "webm"),
    ],
)
def test_audio_only_file_type_follows_its_codec(codec: str, container: str, extension: str) -> None:
    profile = _load({"a": {"kind": "audio", "audio_codec": codec, "container": container}})["a"]
    assert profile.extension == extension
    assert len(profile.encoders) == 1  # no video encoder needed


def test_every_built_in_profile_is_valid_and_described() -> None:
    assert {"default", "hevc-ladder", "mp4-h264", "mp4-hevc", "mp4-av1", "webm-vp9",
            "audio-mp3", "audio-aac", "audio-opus"} <= set(BUILTIN_PROFILES)  # fmt: skip
    for name, profile in BUILTIN_PROFILES.items():
        assert profile.validate(name) == profile
        assert 0 < len(profile.description) <= 120, name


def test_single_conversion_rate_follows_size_and_codec() -> None:
    h264, hevc = BUILTIN_PROFILES["mp4-h264"], BUILTIN_PROFILES["mp4-hevc"]
    assert h264.video_rate(720) == 2800  # the default ladder's 720p rate
    assert hevc.video_rate(720) < h264.video_rate(720)
    assert h264.video_rate(90) == 200  # below the lowest rung: the lowest rung's
    assert _load({"x": {"kind": "single", "video_kbps": 999}})["x"].video_rate(720) == 999


def test_the_encoder_listing_is_parsed_from_its_table_only() -> None:
    found = parse_encoders(ENCODERS_WITHOUT_AV1)
    assert found == {"libx264", "libx265", "libvpx-vp9", "aac", "libmp3lame", "libopus"}


def test_a_configured_profile_ffmpeg_cannot_make_is_refused_with_the_reason() -> None:
    profiles = _load({"tiny-av1": {"kind": "single", "video_codec": "av1"}})
    with pytest.raises(ProfileUnsupported) as refused:
        usable_profiles(profiles, parse_encoders(ENCODERS_WITHOUT_AV1))
    assert "tiny-av1 needs libsvtav1" in str(refused.value)
    assert "VIDFLOW_TRANSCODE_PROFILES_JSON" in str(refused.value)


def test_a_built_in_profile_ffmpeg_cannot_make_is_not_offered() -> None:
    usable = usable_profiles(load_profiles(""), parse_encoders(ENCODERS_WITHOUT_AV1))
    assert "mp4-av1" not in usable
    assert {"default", "hevc-ladder", "webm-vp9", "audio-opus"} <= set(usable)


def test_the_installed_ffmpeg_makes_every_built_in_profile() -> None:
    """The Debian FFmpeg has every encoder the built-ins need (SVT-AV1 included)."""
    assert set(usable_profiles(load_profiles(""))) == set(BUILTIN_PROFILES)
