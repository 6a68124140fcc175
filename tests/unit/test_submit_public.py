"""``vidflow submit``: the owner is bounded by the contract, and what it prints is public."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest
from click.testing import CliRunner

from core import events as ev
from core.errors import is_public
from core.progress import VideoSummary, apply_event
from vidflow.submit import _document, _fail, submit_command

PRESIGNED = "http://127.0.0.1:19000/b/sources/v/source?X-Amz-Signature=abc&X-Amz-Credential=k"


def test_an_owner_past_the_contract_is_refused_before_anything_is_sent(tmp_path: Path) -> None:
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"not sent")
    for owner in ("o" * 65, "al ice", "tab\there"):
        result = CliRunner().invoke(submit_command, [str(clip), "--owner", owner, "--json"])
        assert result.exit_code == 2, result.output
        assert "an owner is at most 64 characters" in result.output


def test_a_failure_reason_followed_by_submit_is_public() -> None:
    summary = VideoSummary(video_id="v")
    reason = f'not a readable video: {PRESIGNED}: Invalid data\n  File "/srv/x.py", line 3'
    apply_event(summary, ev.JobFailed(id="f", video_id="v", run="r", seq=1, reason=reason))
    document = _document(summary)
    assert document["status"] == "failed"
    assert is_public(document["error"]) and document["error"].startswith("not a readable video")


def test_a_crash_is_printed_as_a_public_reason(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        _fail(True, "v", OSError(f"cannot reach {PRESIGNED} from /home/alice/clip.mp4"))
    assert exited.value.code == 1
    # the document is the last line (the CLI logs to stderr; unconfigured here, to stdout)
    printed = msgspec.json.decode(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["status"] == "failed" and printed["video_id"] == "v"
    assert is_public(printed["error"]) and printed["error"].startswith("submit failed: OSError")
