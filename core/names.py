"""Names users gave: what of them vidflow shows.

A filename comes from whoever sent the file (a browser, a producer, a camera) and is shown on
every page that lists its video, so it is reduced to its last path component, stripped of
control and bidirectional-override characters (which can make ``exe.mp4`` read as ``mp4.exe``)
and bounded, before it is stored in any state or event.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["MAX_FILENAME_CHARS", "display_filename"]

MAX_FILENAME_CHARS = 255

# bidi embeddings/overrides/isolates and marks, zero-width and BOM characters: invisible, and
# able to reorder or hide what the rest of the name says
_INVISIBLE = re.compile("[\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]")


def display_filename(raw: str) -> str:
    """``raw`` as it may be shown: its last path component, without control, format or
    bidirectional-override characters, whitespace collapsed, at most 255 characters."""
    name = re.split(r"[/\\]", raw)[-1]
    name = _INVISIBLE.sub("", name)
    name = "".join(" " if unicodedata.category(c) in {"Cc", "Cf", "Zl", "Zp"} else c for c in name)
    name = " ".join(name.split())
    if name in {".", ".."}:
        return ""
    if len(name) > MAX_FILENAME_CHARS:
        name = name[: MAX_FILENAME_CHARS - 1].rstrip() + "…"
    return name
