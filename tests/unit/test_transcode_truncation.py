"""The duration check behind issue 9, obs. 11: a rendition shorter than the probed source by more
than max(1 s, 3 %) is reported, never silently completed."""

from __future__ import annotations

import pytest

from core.errors import is_public
from core.settings import SettingsError, load_settings
from dataflows.transcode.truncation import allowed_shortfall, truncated, truncation_reason


@pytest.mark.parametrize(
    ("probed", "allowed"), [(3.0, 1.0), (10.0, 1.0), (33.4, 1.002), (100.0, 3.0), (0.04, 1.0)]
)
def test_the_allowance_is_one_second_or_three_percent_whichever_is_more(
    probed: float, allowed: float
) -> None:
    assert allowed_shortfall(probed) == pytest.approx(allowed)


def test_a_rendition_short_by_more_than_the_allowance_is_truncated() -> None:
    # the first 60 % of a 3.0 s faststart MP4 encodes to about 1.8-1.9 s
    assert truncated(3.0, {240: 1.86, 144: 1.9}) == {240: 1.86, 144: 1.9}
    assert truncated(100.0, {720: 96.9}) == {720: 96.9}


def test_small_differences_and_unknown_durations_are_not() -> None:
    assert truncated(3.0, {240: 2.05, 144: 3.02}) == {}  # within 1 s
    assert truncated(100.0, {720: 97.5}) == {}  # within 3 %
    assert truncated(0.04, {240: 0.04}) == {}  # a one-frame clip
    assert truncated(3.0, {240: 0.0}) == {}  # ffprobe gave no duration: nothing to compare


def test_the_reason_names_the_rungs_and_both_durations_in_one_public_line() -> None:
    reason = truncation_reason(3.0, {240: 1.86, 144: 1.9})
    assert reason == (
        "renditions shorter than the source (the source may be truncated): "
        "144p 1.9 s, 240p 1.9 s of 3.0 s probed"
    )
    assert is_public(reason) and "\n" not in reason
    assert truncation_reason(3.0, {}) is None


def test_the_setting_is_warn_by_default_and_fail_or_warn_only() -> None:
    assert load_settings({}).transcode.truncated == "warn"
    assert load_settings({"VIDFLOW_TRANSCODE_TRUNCATED": "fail"}).transcode.truncated == "fail"
    with pytest.raises(SettingsError):
        load_settings({"VIDFLOW_TRANSCODE_TRUNCATED": "ignore"})
