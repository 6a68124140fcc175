"""Public failure reasons: what a user may see of a failure, and nothing more.

A failure has two audiences. The operator needs everything (the exception, the URL that was
fetched, the path that was read, the traceback) and gets it in the logs, with the video id. A
user sees a failure in the portal, the JSON API, ``vidflow submit --json``, a timeline entry or
a dead letter: that text must never carry a URL (a presigned one holds credentials), a query
string, a signature, a traceback or a local path of the host that processed it.

:func:`public_reason` is the one place that turns a failure into such a text. Callers say what
failed in words (``what``) and may pass the detail; the detail is scrubbed, shortened to one
line, and kept only if something useful is left. :func:`is_public` is the property the tests
assert on every failure path they exercise.
"""

from __future__ import annotations

import re

__all__ = ["MAX_REASON_CHARS", "is_public", "public_reason", "scrub"]

MAX_REASON_CHARS = 300

# a URL, but not the punctuation that follows it in a sentence (``<url>: Invalid data``)
_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>]*[^\s'\"<>:;,.)]")
_QUERY = re.compile(r"\?\S*=\S*")
_SIGNATURE = re.compile(r"(?i)\b(?:x-amz-[a-z-]+|signature|credential|token|secret)=\S*")
# an absolute local path (two or more segments) or a home-relative one; object keys such as
# ``sources/abc/source`` are relative and stay, they name objects users may know
_PATH = re.compile(r"(?<![\w.:/-])(?:~|/)(?:[^\s/'\"]+/)+[^\s/'\",:;)]*")
_TRACEBACK_START = re.compile(r"Traceback \(most recent call last\):")
_FRAME = re.compile(r'File "[^"]*", line \d+')
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u202a-\u202e\u2066-\u2069]+")

_FORBIDDEN = (
    re.compile(r"://"),
    re.compile(r"(?i)x-amz-"),
    re.compile(r"(?i)signature="),
    re.compile(r"Traceback \(most recent call last\)"),
    _FRAME,
    re.compile(r"(?<![\w.:/-])/(?:[^\s/'\"]+/)+"),
)


def scrub(detail: str) -> str:
    """``detail`` with URLs, query strings, signatures, tracebacks and local paths removed, as
    one line of at most :data:`MAX_REASON_CHARS` characters."""
    match = _TRACEBACK_START.search(detail)
    if match:
        # keep only the exception line a traceback ends with
        tail = detail[match.end() :].strip().splitlines()
        detail = detail[: match.start()] + (" " + tail[-1] if tail else "")
    text = _FRAME.sub("", detail)
    text = _URL.sub("<url>", text)
    text = _SIGNATURE.sub("", text)
    text = _QUERY.sub("", text)
    text = _PATH.sub("<path>", text)
    text = _CONTROL.sub(" ", text)
    text = _without_forbidden(text)
    text = " ".join(text.split())
    if len(text) > MAX_REASON_CHARS:
        text = text[: MAX_REASON_CHARS - 1].rstrip() + "…"
    return text


def public_reason(what: str, detail: str | BaseException | None = None) -> str:
    """A short, stable reason for users: ``what`` failed, plus the scrubbed detail if any.

    ``what`` is written by vidflow (``"not a readable video"``, ``"previews failed"``); the
    detail may come from anywhere (FFmpeg's stderr, an exception, a store's answer) and is
    scrubbed. The full detail belongs in the log line that goes with the failure.
    """
    head = scrub(what)
    if detail is None:
        return head
    text = detail if isinstance(detail, str) else _exception_text(detail)
    tail = scrub(text)
    if not tail or tail in {"<url>", "<path>"}:
        return head
    return scrub(f"{head}: {tail}")


def is_public(text: str) -> bool:
    """Whether ``text`` is safe to show: no URL, signature, traceback or local path."""
    return len(text) <= MAX_REASON_CHARS and not any(p.search(text) for p in _FORBIDDEN)


def _without_forbidden(text: str) -> str:
    """Whatever the patterns above left of a forbidden form (a bare ``x-amz-`` header name, a
    traceback heading without its colon) removed, until none is left: removing one may join
    two pieces into another."""
    while True:
        cleaned = text
        for pattern in _FORBIDDEN:
            cleaned = pattern.sub(" ", cleaned)
        if cleaned == text:
            return text
        text = cleaned


def _exception_text(exc: BaseException) -> str:
    message = str(exc)
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__
