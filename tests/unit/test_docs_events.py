"""The event examples in ``docs/events.md`` are what producers copy: each must decode."""

from __future__ import annotations

import re
from pathlib import Path

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
