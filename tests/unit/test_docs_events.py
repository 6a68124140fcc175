"""The event examples in ``docs/events.md`` are what producers copy: each must decode."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from core import events as ev

DOC = Path(__file__).resolve().parents[2] / "docs" / "events.md"


def _examples() -> list[str]:
    return re.findall(r"```json\n(.*?)```", DOC.read_text(), flags=re.DOTALL)


def test_every_json_example_in_the_event_docs_decodes() -> None:
    examples = _examples()
    assert len(examples) >= 2  # the upload and the file-report examples at least
    decoded = [ev.decode(example.encode()) for example in examples]
    assert {type(event) for event in decoded} >= {ev.UploadCompleted, ev.FileChanged}
    upload = next(e for e in decoded if isinstance(e, ev.UploadCompleted))
    assert upload.key == f"incoming/{upload.upload_id}/source"  # the key rule the doc states


def test_the_documented_bounds_are_the_contracts() -> None:
    doc = DOC.read_text()
    documented = {
        "1-64 characters": ev.ID_MAX == 64,
        "1-128 characters": ev.RUN_MAX == 128,
        "1-1024 characters": ev.KEY_MAX == 1024,
        "0-255 characters": ev.NAME_MAX == 255,
        "0-4096 characters": ev.TEXT_MAX == 4096,
        "0 .. 2^31-1": ev.INT32_MAX == 2**31 - 1,
        "0 .. 2^50": ev.SIZE_MAX == 2**50,
        "at most 64 / 1 000 000 items": (ev.LIST_MAX, ev.CHUNKS_MAX) == (64, 1_000_000),
    }
    for phrase, matches_code in documented.items():
        assert phrase in doc and matches_code, phrase
    # each documented bound is enforced: one past it does not decode
    past = (
        b'{"type": "job.cancelled", "id": "c", "video_id": "v", "run": "r", "job_id": "j", "seq": '
    )
    assert ev.decode(past + str(ev.INT32_MAX).encode() + b"}")
    with pytest.raises(ev.DecodeError, match="seq"):
        ev.decode(past + str(ev.INT32_MAX + 1).encode() + b"}")
