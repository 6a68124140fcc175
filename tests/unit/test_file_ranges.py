"""Which ``Range`` headers the file proxy hands on to the store, and which it ignores."""

from __future__ import annotations

import pytest

from portal.files.ranges import store_range


@pytest.mark.parametrize(
    ("header", "sent"),
    [
        ("bytes=0-99", "bytes=0-99"),
        ("bytes=100-", "bytes=100-"),
        ("bytes=-500", "bytes=-500"),
        ("Bytes = 7-7", "bytes=7-7"),  # the unit is case-insensitive; spaces are dropped
        ("bytes=007-010", "bytes=7-10"),
    ],
)
def test_one_byte_range_is_handed_on(header: str, sent: str) -> None:
    assert store_range(header) == sent


@pytest.mark.parametrize(
    "header",
    [None, "", "bytes=0-1,5-9", "items=0-5", "bytes=abc", "bytes=9-3", "bytes=-0", "bytes=-",
     "bytes=1-2\r\nX-Evil: 1", f"bytes=0-{'9' * 19}"],
)  # fmt: skip
def test_anything_else_means_the_whole_object(header: str | None) -> None:
    assert store_range(header) is None
