"""Public failure reasons: what a user may see of a failure (issue 9, observation 7)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.errors import MAX_REASON_CHARS, is_public, public_reason, scrub

PRESIGNED = (
    "http://127.0.0.1:19000/vidflow/sources/abc/source?X-Amz-Algorithm=AWS4-HMAC-SHA256"
    "&X-Amz-Credential=vidflow%2F20261130%2Fus-east-1%2Fs3%2Faws4_request"
    "&X-Amz-Date=20261130T170000Z&X-Amz-Expires=3600&X-Amz-SignedHeaders=host"
    "&X-Amz-Signature=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
)
TRACEBACK = (
    "Traceback (most recent call last):\n"
    '  File "/work/vidflow/dataflows/ingest/logic.py", line 398, in _complete\n'
    "    found = probe(store.presigned(key))\n"
    '  File "/usr/lib/python3.11/subprocess.py", line 571, in run\n'
    "    raise CalledProcessError(retcode, process.args)\n"
    "ProbeError: ffprobe exited 1"
)
SECRETS = ("X-Amz", "Signature=", "Credential", "127.0.0.1:19000", "://", "Traceback", 'File "',
           "/work/", "/usr/lib", "/home/alice", "/tmp/vidflow")  # fmt: skip


@pytest.mark.parametrize(
    "detail",
    [
        f"{PRESIGNED}: Invalid data found when processing input",
        f"could not read {PRESIGNED}",
        TRACEBACK,
        "[Errno 2] No such file or directory: '/tmp/vidflow/work/abc/720p.mp4'",
        "cannot open /home/alice/rec/cam-1.mp4 for reading",
        "s3 said: GET /vidflow/sources/abc/source?versionId=1&signature=abc failed",
        "token=abc123 secret=hunter2 rejected",
        "x" * 2000,
        "line one\nline two\x00\x1b[31m",
    ],
)
def test_scrubbed_details_are_public(detail: str) -> None:
    reason = public_reason("probe failed", detail)
    assert is_public(reason), reason
    assert reason.startswith("probe failed")
    assert len(reason) <= MAX_REASON_CHARS and "\n" not in reason
    for secret in SECRETS:
        assert secret not in reason, (secret, reason)


def test_a_traceback_keeps_its_last_line_only() -> None:
    assert public_reason("probe failed", TRACEBACK) == "probe failed: ProbeError: ffprobe exited 1"


def test_a_presigned_url_leaves_the_message_around_it() -> None:
    reason = public_reason("not a readable video", f"{PRESIGNED}: Invalid data found")
    assert reason == "not a readable video: <url>: Invalid data found"


def test_object_keys_stay_they_name_objects_a_user_may_know() -> None:
    detail = "sources/abc/source does not match chunk 3 of sources/abc/manifest.json"
    assert scrub(detail) == detail
    assert public_reason("verification failed", detail) == f"verification failed: {detail}"
    assert is_public(detail)


def test_an_exception_detail_names_its_type() -> None:
    error = OSError(2, "No such file or directory", "/srv/media/cam-1/a.mp4")
    reason = public_reason("file unreadable", error)
    assert reason.startswith("file unreadable: FileNotFoundError") and "/srv" not in reason
    assert public_reason("stalled", ValueError()) == "stalled: ValueError"


def test_nothing_useful_left_means_only_what_failed() -> None:
    assert public_reason("download failed", PRESIGNED) == "download failed"
    assert public_reason("download failed", "/var/lib/vidflow/x/y") == "download failed"
    assert public_reason("download failed") == "download failed"


@pytest.mark.parametrize(
    "text",
    [PRESIGNED, TRACEBACK, "see /etc/vidflow/secret.env", "?X-Amz-Signature=abc", "x" * 301],
)
def test_is_public_refuses_what_a_user_must_not_see(text: str) -> None:
    assert not is_public(text)


PIECES = [*"/:?=&.~ \n\"'-_aAxX", "x-amz-", "Signature=", "http://h/", 'File "a", line 1',
          "Traceback (most recent call last)"]  # fmt: skip


@given(st.lists(st.sampled_from(PIECES), max_size=40).map("".join))
def test_whatever_the_detail_the_reason_is_public(detail: str) -> None:
    assert is_public(public_reason("failed", detail))
    assert is_public(scrub(detail))
