"""``vidflow replay`` and the portal's bulk reprocess, on real Kafka and PostgreSQL."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from pathlib import Path

import msgspec
import pytest
from litestar.testing import TestClient
from sqlalchemy import create_engine, text

from connectors.kafka import end_offsets, flush_or_raise, make_producer, produce_event
from core import events as ev
from core.settings import Settings, settings_environ
from portal.app import create_app
from portal.projector import Projector
from portal.rebuild import replay_to_end
from tests.flows import ROOT, TopicReader
from tests.integration.test_portal import life_of, produce
from tests.portal_login import csrf_headers, log_in
from vidflow.replay.dead_letters import resend_dead_letters
from vidflow.replay.reprocess import reprocess
from vidflow.replay.selections import LetterSelection, VideoSelection

pytestmark = pytest.mark.integration

LADDERS = '{"small": [{"height": 240, "video_kbps": 300}, {"height": 144, "video_kbps": 150}]}'


def _with_profiles(settings: Settings) -> Settings:
    transcode = msgspec.structs.replace(settings.transcode, profiles_json=LADDERS)
    return msgspec.structs.replace(settings, transcode=transcode)


def _project(settings: Settings, items: list[ev.Event]) -> None:
    """The events on the status topic, projected as the live projector would."""
    produce(settings, items)
    replay_to_end(Projector(settings))


def _three_videos(settings: Settings) -> tuple[str, str, str]:
    """One completed and two failed videos in the projection."""
    ok, bad1, bad2 = (uuid.uuid4().hex for _ in range(3))
    _project(
        settings,
        life_of(ok, "ok.mp4") + life_of(bad1, "bad1.mp4", fail=True)
        + life_of(bad2, "bad2.mp4", fail=True),
    )  # fmt: skip
    return ok, bad1, bad2


def _messages(settings: Settings, topic: str) -> int:
    return sum(end_offsets(settings.kafka, [topic])[topic].values())


def _cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**settings_environ(settings), "PATH": "/usr/bin:/bin", "HOME": str(Path.home())}
    return subprocess.run(
        [sys.executable, "-m", "vidflow", "replay", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def _requests(settings: Settings, count: int) -> list[ev.TranscodeRequested]:
    reader = TopicReader(settings, settings.kafka.topic_jobs)
    try:
        events = reader.wait_for(lambda got: len(got) >= count, timeout=30)
        reader.poll(1.0)  # and nothing more
    finally:
        reader.close()
    assert all(isinstance(e, ev.TranscodeRequested) for e in reader.events)
    return [e for e in events if isinstance(e, ev.TranscodeRequested)]


def test_reprocess_dry_run_lists_the_selection_and_sends_nothing(
    portal_settings: Settings,
) -> None:
    ok, bad1, bad2 = _three_videos(portal_settings)
    listed = _cli(portal_settings, "reprocess", "--status", "failed", "--dry-run")
    assert listed.returncode == 0, listed.stderr
    assert bad1 in listed.stdout and bad2 in listed.stdout and ok not in listed.stdout
    assert "bad1.mp4" in listed.stdout and "failed" in listed.stdout
    assert "2 video(s) would be reprocessed; nothing sent" in listed.stdout
    assert _messages(portal_settings, portal_settings.kafka.topic_jobs) == 0

    refused = _cli(portal_settings, "reprocess", "--all", "--status", "failed")
    assert refused.returncode == 2 and "exactly one of" in refused.stderr

    sent = _cli(portal_settings, "reprocess", "--video", bad1)
    assert sent.returncode == 0, sent.stderr
    assert "reprocess: 1 request(s) sent" in sent.stdout
    assert [r.video_id for r in _requests(portal_settings, 1)] == [bad1]


def test_reprocess_failed_sends_one_new_job_per_failed_video_with_the_profile(
    portal_settings: Settings,
) -> None:
    settings = _with_profiles(portal_settings)
    ok, bad1, bad2 = _three_videos(settings)
    report = asyncio.run(reprocess(settings, VideoSelection(status="failed"), "small"))
    assert sorted(report.sent) == sorted([bad1, bad2]) and not report.skipped
    assert [v.id for v in report.selected if v.id == ok] == []  # the completed one is left be

    requests = _requests(settings, 2)
    assert sorted(r.video_id for r in requests) == sorted([bad1, bad2])
    assert {r.profile for r in requests} == {"small"}
    assert {r.reason for r in requests} == {"reprocess"}
    assert {r.source.key for r in requests} == {f"sources/{bad1}/source", f"sources/{bad2}/source"}
    # a new job each, never the failed one (the transcode flow would drop a job id it has seen)
    assert len({r.job_id for r in requests}) == 2
    assert not {r.job_id for r in requests} & {f"job-{bad1}", f"job-{bad2}"}


def test_flow_rerun_refuses_while_the_flow_runs_and_resets_its_recovery_otherwise(
    portal_settings: Settings,
) -> None:
    home = Path(portal_settings.home).resolve()
    recovery = home / "recovery" / "transcode"
    recovery.mkdir(parents=True)
    (recovery / "part-0.sqlite3").write_bytes(b"state")
    producer = make_producer(portal_settings.kafka)
    for _ in range(3):
        produce_event(producer, portal_settings.kafka.topic_jobs, ev.TranscodeCancel(
            id=uuid.uuid4().hex, video_id=uuid.uuid4().hex))  # fmt: skip
    flush_or_raise(producer)

    running = subprocess.Popen(["sleep", "120"])
    try:
        (home / "run").mkdir(parents=True)
        (home / "run" / "app-transcode.pid").write_text(str(running.pid))
        refused = _cli(portal_settings, "flow", "transcode")
        assert refused.returncode == 2, refused.stderr
        assert "transcode flow is running" in refused.stderr and "vidflow down" in refused.stderr
        assert (recovery / "part-0.sqlite3").read_bytes() == b"state"  # untouched
    finally:
        running.kill()
        running.wait()

    planned = _cli(portal_settings, "flow", "transcode", "--dry-run")
    assert planned.returncode == 0, planned.stderr
    assert "would move transcode aside" in planned.stdout
    assert f"re-reads {portal_settings.kafka.topic_jobs} from offset 0: 3 message(s)" in (
        planned.stdout
    )
    assert (recovery / "part-0.sqlite3").exists()

    done = _cli(portal_settings, "flow", "transcode")
    assert done.returncode == 0, done.stderr
    assert not recovery.exists()
    [aside] = (home / "recovery").glob("transcode.replaced-*")
    assert (aside / "part-0.sqlite3").read_bytes() == b"state"


def test_dead_letters_of_a_stage_go_back_to_their_topic_as_their_raw_bytes(
    portal_settings: Settings,
) -> None:
    k = portal_settings.kafka
    broken = b'{"type": "upload.completed", "broken'
    decode = ev.dead_letter(raw=broken, key=b"v1", topic=k.topic_uploads, partition=0, offset=7,
                            error="bad json")  # fmt: skip
    consume = ev.dead_letter(raw=b"other", key=b"v2", topic=k.topic_uploads, partition=0,
                             offset=8, error="broker", stage="consume")  # fmt: skip
    producer = make_producer(k)
    for letter in (decode, consume):
        produce_event(producer, k.topic_dlq, letter)
    flush_or_raise(producer)
    replay_to_end(Projector(portal_settings))

    dry = asyncio.run(
        resend_dead_letters(portal_settings, LetterSelection(stage="decode"), dry_run=True)
    )
    assert [d.id for d in dry.selected] == [decode.id]
    listed = _cli(portal_settings, "dead-letters", "--stage", "decode", "--dry-run")
    assert listed.returncode == 0, listed.stderr
    assert decode.id in listed.stdout and consume.id not in listed.stdout
    assert "1 dead letter(s) would be resent; nothing sent" in listed.stdout
    assert _messages(portal_settings, k.topic_uploads) == 0

    report = asyncio.run(resend_dead_letters(portal_settings, LetterSelection(stage="decode")))
    assert report.resent == [decode.id] and not report.failed
    reader = TopicReader(portal_settings, k.topic_uploads)
    try:
        deadline_polls = 0
        while not reader.raw and deadline_polls < 60:
            reader.poll(0.5)
            deadline_polls += 1
        reader.poll(1.0)
    finally:
        reader.close()
    assert reader.raw == [decode.raw]
    engine = create_engine(portal_settings.postgres.url)
    try:
        with engine.connect() as conn:
            kept = conn.execute(text("SELECT letter_id, status, count FROM dead_letter_replays"))
            assert [tuple(r) for r in kept] == [(decode.id, "replayed", 1)]
    finally:
        engine.dispose()


def test_portal_bulk_reprocess_of_failed_videos_sends_and_answers_the_count(
    portal_settings: Settings,
) -> None:
    ok, bad1, bad2 = _three_videos(portal_settings)
    with TestClient(app=create_app(portal_settings)) as client:
        log_in(client, portal_settings, "ops", "admin")
        page = client.get("/operations")
        assert 'hx-post="/operations/reprocess-failed"' in page.text and "hx-confirm" in page.text
        answer = client.post(
            "/operations/reprocess-failed", headers={**csrf_headers(client), "HX-Request": "true"}
        )
        assert answer.status_code == 200, answer.text
        assert '<span class="count">2</span> failed videos' in answer.text

        log_in(client, portal_settings, "someone", "uploader")
        refused = client.post("/operations/reprocess-failed", headers=csrf_headers(client))
        assert refused.status_code in (401, 403)
    requests = _requests(portal_settings, 2)
    assert sorted(r.video_id for r in requests) == sorted([bad1, bad2])
    assert ok not in {r.video_id for r in requests}
    assert {r.profile for r in requests} == {portal_settings.transcode.default_profile}
