"""Ladder planning (pure): short-side rungs, rotation, even sizes, never upscaled."""

from __future__ import annotations

import pytest

from core.events import Probe
from core.profiles import DEFAULT_LADDER, load_profiles
from dataflows.transcode.ladder import display_size, even, plan_ladder
from dataflows.transcode.state import group_units


def probe(width: int, height: int, rotation: int = 0, audio: bool = True) -> Probe:
    return Probe(
        duration=10, width=width, height=height, rotation=rotation, fps=30, has_audio=audio
    )


def sizes(p: Probe) -> list[tuple[int, int, int]]:
    return [(r.label, r.width, r.height) for r in plan_ladder(p, DEFAULT_LADDER)]


def test_1080p_landscape_gets_rungs_at_or_below_the_source_lowest_first() -> None:
    assert sizes(probe(1920, 1080)) == [
        (144, 256, 144), (240, 426, 240), (360, 640, 360), (480, 854, 480),
        (720, 1280, 720), (1080, 1920, 1080),
    ]  # fmt: skip


def test_portrait_phone_video_is_a_1080p_source() -> None:
    planned = sizes(probe(1080, 1920))
    assert planned[-1] == (1080, 1080, 1920)
    assert (720, 720, 1280) in planned


def test_rotation_metadata_swaps_the_displayed_size() -> None:
    rotated = probe(1920, 1080, rotation=90)
    assert display_size(rotated) == (1080, 1920)
    assert sizes(rotated)[-1] == (1080, 1080, 1920)


def test_odd_sizes_come_out_even_with_the_aspect_kept() -> None:
    for label, width, height in sizes(probe(333, 251)):
        assert width % 2 == 0 and height % 2 == 0
        assert width / height == pytest.approx(333 / 251, rel=0.02)
        assert min(width, height) == label


def test_a_source_below_the_lowest_rung_keeps_its_own_size() -> None:
    assert sizes(probe(160, 120)) == [(120, 160, 120)]
    assert sizes(probe(97, 55)) == [(56, 96, 56)]  # 97 and 55 round to the nearest even


def test_4k_tops_out_at_2160_and_nothing_is_upscaled() -> None:
    assert sizes(probe(3840, 2160))[-1] == (2160, 3840, 2160)
    assert all(label <= 720 for label, _, _ in sizes(probe(1280, 720)))


def test_no_audio_source_plans_no_audio() -> None:
    assert not any(r.audio for r in plan_ladder(probe(640, 360, audio=False), DEFAULT_LADDER))


def test_even() -> None:
    assert [even(1), even(3), even(5.2), even(719.9)] == [2, 4, 6, 720]


def test_profiles_from_json() -> None:
    profiles = load_profiles(
        '{"small": [{"height": 144, "video_kbps": 150}, {"height": 360, "video_kbps": 700}]}'
    )
    assert {"default", "small"} <= set(profiles)
    assert profiles["small"].kind == "ladder"
    assert [r.height for r in profiles["small"].rungs] == [360, 144]
    with pytest.raises(ValueError, match="no rungs"):
        load_profiles('{"empty": []}')


def test_units_ladder_or_one_per_rung() -> None:
    planned = plan_ladder(probe(1280, 720), DEFAULT_LADDER)
    ladder = group_units(planned, "ladder")  # one decode for every rung (issue 12)
    assert [(u.unit_id, u.labels) for u in ladder] == [("ladder", (144, 240, 360, 480, 720))]
    assert [u.early for u in ladder] == [True]  # it makes the first playable rung
    rungs = group_units(planned, "rung")
    assert [u.early for u in rungs] == [True, False, False, False, False]
    assert [u.labels for u in rungs] == [(144,), (240,), (360,), (480,), (720,)]
    assert [u.unit_id for u in rungs] == ["144p", "240p", "360p", "480p", "720p"]
    two = plan_ladder(probe(426, 240), DEFAULT_LADDER)
    assert [u.labels for u in group_units(two, "ladder")] == [(144, 240)]  # one decode
    assert not group_units(two, "ladder")[0].early  # a lone unit is simply the job
