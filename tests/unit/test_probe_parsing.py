"""ffprobe report parsing (pure): rotation, VFR, audio, and clear reasons for non-videos."""

from __future__ import annotations

from typing import Any

import pytest

from connectors.ffmpeg import ProbeError, parse_probe


def report(**video: Any) -> dict[str, Any]:
    stream = {"codec_type": "video", "codec_name": "h264", "width": 1920, "height": 1080,
              "avg_frame_rate": "30/1", "r_frame_rate": "30/1"} | video  # fmt: skip
    return {"streams": [stream], "format": {"duration": "4.0", "format_name": "mov,mp4"}}


def test_landscape_without_audio() -> None:
    probe = parse_probe(report())
    assert (probe.width, probe.height, probe.rotation) == (1920, 1080, 0)
    assert probe.fps == 30.0
    assert not probe.has_audio and probe.audio_codec is None
    assert not probe.variable_frame_rate


def test_rotation_from_display_matrix_and_tag() -> None:
    assert parse_probe(report(side_data_list=[{"rotation": -90}])).rotation == 270
    assert parse_probe(report(tags={"rotate": "90"})).rotation == 90


def test_audio_and_variable_frame_rate() -> None:
    data = report(avg_frame_rate="2997/100", r_frame_rate="60/1")
    data["streams"].append({"codec_type": "audio", "codec_name": "aac"})
    probe = parse_probe(data)
    assert probe.has_audio and probe.audio_codec == "aac"
    assert probe.variable_frame_rate


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ({"streams": [{"codec_type": "audio"}], "format": {}}, "not a video"),
        (report(width=0), "no picture size"),
        ({"streams": report()["streams"], "format": {"duration": "0"}}, "no duration"),
        (
            {
                "streams": [
                    {
                        "codec_type": "video",
                        "disposition": {"attached_pic": 1},
                        "width": 10,
                        "height": 10,
                    }
                ],
                "format": {"duration": "3"},
            },
            "not a video",
        ),
    ],
)
def test_non_videos_have_readable_reasons(data: dict[str, Any], reason: str) -> None:
    with pytest.raises(ProbeError, match=reason):
        parse_probe(data)
