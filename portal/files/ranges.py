"""Which piece of an object a ``Range`` header asks for, in the form the object store takes.

Players fetch pieces of one object: hls.js for ``EXT-X-BYTERANGE`` segments and ``EXT-X-MAP``
init sections, dash.js for a ``SegmentBase`` representation's index and media ranges. The proxy
hands a single well-formed byte range on to the store, which clips it to the object and answers
206 with its ``Content-Range`` (or refuses it when it starts past the end). Anything else (several
ranges, another unit, a malformed or backwards range) is ignored and the whole object is served,
as RFC 9110 §14.2 allows a server to do.
"""

from __future__ import annotations

import re

__all__ = ["store_range"]

# one range, digits bounded so the store never sees a number it cannot parse
_FIRST_LAST = re.compile(r"\Abytes=([0-9]{1,18})-([0-9]{0,18})\Z", re.IGNORECASE)
_SUFFIX = re.compile(r"\Abytes=-([0-9]{1,18})\Z", re.IGNORECASE)


def store_range(header: str | None) -> str | None:
    """The ``Range`` header to send the store for ``header``, or None to serve the whole object."""
    if not header:
        return None
    text = header.strip().replace(" ", "")
    if found := _FIRST_LAST.match(text):
        first, last = int(found.group(1)), found.group(2)
        if last and int(last) < first:
            return None  # backwards: invalid, so ignored
        return f"bytes={first}-{int(last) if last else ''}"
    if (found := _SUFFIX.match(text)) and int(found.group(1)) > 0:
        return f"bytes=-{int(found.group(1))}"
    return None
