"""Filenames as they may be shown (issue 9, observation 10: a 200 KB name bloated every page)."""

from __future__ import annotations

from core.names import MAX_FILENAME_CHARS, display_filename


def test_a_huge_name_is_bounded() -> None:
    shown = display_filename("a" * 200_000 + ".mp4")
    assert len(shown) == MAX_FILENAME_CHARS
    assert shown.startswith("aaa")


def test_control_and_bidi_override_characters_are_removed() -> None:
    # U+202E makes "clip\u202e4pm.exe" read as "clipexe.mp4"
    assert display_filename("clip\u202e4pm.exe") == "clip4pm.exe"
    assert display_filename("a\x00b\r\nc\x1b[31m.mp4") == "a b c [31m.mp4"
    assert display_filename("x\u2066y\u2069\u200f.mkv") == "xy.mkv"


def test_only_the_last_path_component_is_kept() -> None:
    assert display_filename("../../etc/passwd holiday.mkv") == "passwd holiday.mkv"
    assert display_filename("C:\\Users\\bob\\clip.mp4") == "clip.mp4"
    assert display_filename("..") == ""
    assert display_filename("   ") == ""
