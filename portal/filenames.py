"""File names people chose: checked when an upload is created, cleaned wherever one is shown.

A name is the uploader's text and nothing else relies on it (object keys are made from ids),
but it is shown to people: in lists, page titles, the API. Two things go wrong there. Control
characters (a NUL breaks PostgreSQL text, a newline breaks a log line or a header) and
bidirectional overrides (U+202E turns ``evil\\u202egpj.exe`` into ``evilexe.jpg`` on screen)
make a name lie about itself; and an unbounded name (200 KB) bloats every page listing it.

At upload creation (:func:`check_upload_filename`) a name with a control character is refused
(400, before anything exists in storage) and one longer than :data:`MAX_FILENAME_CHARS` too.
Wherever a name is shown (:func:`display_filename`, the ``filename`` template filter), names
that came by other ways (a watched file, a producer's event) are cleaned: control, format-
direction and lone surrogate characters removed, the result cut to the bound.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["MAX_FILENAME_CHARS", "InvalidFilename", "check_upload_filename", "display_filename"]

MAX_FILENAME_CHARS = 255
# Bidirectional embeddings/overrides/isolates (U+202A..U+202E, U+2066..U+2069) and the marks
# (LRM, RLM, ALM): invisible, and able to reorder what is shown around them.
_BIDI = re.compile(r"[\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c]")
_HIDDEN = {"Cc", "Cs"}  # control characters, lone surrogates


class InvalidFilename(ValueError):
    """A name an upload may not be created with; the message is fit to show the user."""


def _visible(raw: str) -> str:
    text = _BIDI.sub("", raw)
    return "".join(c for c in text if unicodedata.category(c) not in _HIDDEN)


def display_filename(raw: str | None) -> str:
    """``raw`` as it may be shown: no control or bidi characters, at most 255 characters."""
    if not raw:
        return ""
    text = _visible(raw)
    if len(text) > MAX_FILENAME_CHARS:
        text = text[: MAX_FILENAME_CHARS - 1] + "…"
    return text


def check_upload_filename(raw: str) -> str:
    """The name to record for a new upload, or :class:`InvalidFilename` saying why not.

    Refused: empty, a control character (NUL, newline, ...), a lone surrogate, more than 255
    characters. Bidi controls are dropped rather than refused (a right-to-left name may carry
    marks legitimately); the cleaned name is what is recorded and announced.
    """
    if any(unicodedata.category(c) in _HIDDEN for c in raw):
        raise InvalidFilename("the file name contains a control character")
    cleaned = _BIDI.sub("", raw).strip()
    if not cleaned:
        raise InvalidFilename("the file name is empty")
    if len(cleaned) > MAX_FILENAME_CHARS:
        raise InvalidFilename(f"the file name is longer than {MAX_FILENAME_CHARS} characters")
    return cleaned
