"""The transcode flow's graph in this process, on one and two workers: plan a ladder no higher
than the source, fan out one unit per rung, collect them into ``job.completed``; a cancel; a unit
that fails fails the job.

Kafka is a scripted source and a list; FFmpeg and the object store are real (the encode and its
publishing run as child processes that read and write MinIO, so there is no boundary to fake
short of rewriting them). Clips are a second long and the preset ultrafast.
"""

from __future__ import annotations

import hashlib
import io
import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import msgspec
import pytest
from bytewax.testing import TestingSink

from connectors.ffmpeg import probe
from connectors.storage import make_client
from core import events as ev
from core.layout import ObjectLayout
from core.settings import Settings, settings_environ
from dataflows.transcode.cluster import ClusterShape
from dataflows.transcode.collect import CANCEL_GIVE_UP
from dataflows.transcode_flow import build_flow
from tests.inprocess.harness import Output, Script, ScriptedSource, Until, run_flow
from tests.media import h264_clip

pytestmark = pytest.mark.integration  # real MinIO and FFmpeg

E = TypeVar("E")
WAIT = 60.0
# the 320x240 clip gets the rungs up to its height: 240, 180, 144 (one unit each)
PROFILES = json.dumps(
    {
        "test": [
            {"height": 480, "video_kbps": 900},
            {"height": 240, "video_kbps": 400},
            {"height": 180, "video_kbps": 300},
            {"height": 144, "video_kbps": 200},
        ]
    }
)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return h264_clip(tmp_path_factory.mktemp("media") / "clip.mp4", seconds=1.0)


@pytest.fixture
def tc_settings(
    isolated_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Settings:
    """Fast transcode settings, also in the environment the flow's children read theirs from."""
    transcode = msgspec.structs.replace(
        isolated_settings.transcode, profiles_json=PROFILES, preset="ultrafast", unit_mode="rung",
        retries=1, retry_backoff=0.2, stall_timeout=10.0, poll_interval=0.1,
    )  # fmt: skip
    settings = msgspec.structs.replace(
        isolated_settings, transcode=transcode, home=tmp_path / "home"
    )
    for name, value in settings_environ(settings).items():
        monkeypatch.setenv(name, value)
    return settings


class Transcode:
    """One run of the transcode graph: its settings, script and what it wrote."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.client = make_client(settings.storage)
        self.layout = ObjectLayout(settings.storage)
        self.script = Script()
        self.out = Output()
        k = settings.kafka
        self.jobs, self.status, self.dlq = k.topic_jobs, k.topic_status, k.topic_dlq

    def request(self, data: bytes, known: ev.Probe) -> ev.TranscodeRequested:
        """Store ``data`` as a new video's source; the request to transcode it (not sent)."""
        video_id = uuid.uuid4().hex
        key = self.layout.source(video_id, ".mp4")
        bucket = self.settings.storage.bucket
        self.client.put_object(bucket, key, io.BytesIO(data), len(data))
        source = ev.SourceRef(
            bucket=bucket, key=key, size=len(data), sha256=hashlib.sha256(data).hexdigest()
        )
        return ev.TranscodeRequested(
            id=uuid.uuid4().hex, video_id=video_id, job_id=f"job-{video_id}", source=source,
            probe=known, profile="test",
        )  # fmt: skip

    def statuses(self, kind: type[E]) -> list[E]:
        return self.out.of(self.status, kind)

    def until(self, kind: type[ev.Event], what: str = "") -> Until:
        return Until(lambda: bool(self.statuses(kind)), WAIT, what or kind.__name__)

    def run(self, workers: int) -> float:
        source = ScriptedSource(self.script.steps)
        shape = ClusterShape(workers_per_process=workers)
        flow = build_flow(
            self.settings, source=source, sink=TestingSink(self.out), client=self.client,
            shape=shape,
        )  # fmt: skip
        seconds = run_flow(flow, workers)
        types = [e.type for e in self.out.events(self.status)]
        assert not source.timed_out, f"timed out waiting for {source.timed_out}; status: {types}"
        return seconds

    def keys(self, prefix: str) -> list[str]:
        bucket = self.settings.storage.bucket
        found = self.client.list_objects(bucket, prefix, recursive=True)
        return sorted(o.object_name or "" for o in found)


def first(items: list[E], where: Callable[[E], bool] = lambda _: True) -> E:
    return next(item for item in items if where(item))


def test_a_job_is_planned_below_its_source_fanned_out_and_collected(
    workers: int, tc_settings: Settings, clip: Path
) -> None:
    run = Transcode(tc_settings)
    request = run.request(clip.read_bytes(), probe(str(clip)))
    run.script.send(run.jobs, request)
    run.script.then(run.until(ev.JobCompleted))

    seconds = run.run(workers)

    started = run.statuses(ev.UnitStarted)
    assert sorted(tuple(s.heights) for s in started) == [(144,), (180,), (240,)]  # not 480
    assert len({s.run for s in started}) == 3  # one run (and sequence) per unit
    landed = sorted(r.rendition.height for r in run.statuses(ev.RenditionCompleted))
    assert landed == [144, 180, 240]
    [done] = run.statuses(ev.JobCompleted)
    assert (done.video_id, done.job_id) == (request.video_id, request.job_id)
    assert [r.height for r in done.renditions] == [240, 180, 144]
    assert all(r.width <= 320 and r.height <= 240 for r in done.renditions)
    bucket = tc_settings.storage.bucket
    for key in [done.master, done.poster, done.sprite, *(r.key for r in done.renditions)]:
        assert run.client.stat_object(bucket, key).size, key
    assert not run.statuses(ev.JobFailed) and not run.out.events(run.dlq)
    assert seconds < WAIT


def test_a_cancelled_job_stops_and_reports_cancelled(
    workers: int, tc_settings: Settings, clip: Path
) -> None:
    run = Transcode(tc_settings)
    request = run.request(clip.read_bytes(), probe(str(clip)))
    cancel = ev.TranscodeCancel(
        id=uuid.uuid4().hex, video_id=request.video_id, job_id=request.job_id
    )
    run.script.send(run.jobs, request)
    run.script.send(run.jobs, cancel)  # before any unit could finish
    run.script.then(run.until(ev.JobCancelled))

    seconds = run.run(workers)

    [cancelled] = run.statuses(ev.JobCancelled)
    assert seconds < CANCEL_GIVE_UP / 2  # every unit reported stopped: no waiting them out
    assert cancelled.job_id == request.job_id
    assert not run.statuses(ev.JobCompleted) and not run.statuses(ev.RenditionCompleted)
    assert run.keys(run.layout.rendition(request.video_id, 0).rsplit("/", 1)[0] + "/") == []


def test_a_unit_that_fails_for_good_fails_the_job_and_a_malformed_request_is_a_dead_letter(
    workers: int, tc_settings: Settings, clip: Path
) -> None:
    run = Transcode(tc_settings)
    # a source that got past ingest corrupt: its probe says video, its bytes are not
    request = run.request(b"\x00not a video" * 1000, probe(str(clip)))
    garbage = b'{"v": 1, "type": "transcode.requested"'
    run.script.send(run.jobs, garbage)
    run.script.send(run.jobs, request)

    def every_unit_failed() -> bool:  # so no FFmpeg outlives the run
        finals = [f for f in run.statuses(ev.RenditionFailed) if f.final]
        return len(finals) == 3 and bool(run.statuses(ev.JobFailed))

    run.script.then(Until(every_unit_failed, WAIT, "every unit failed"))

    run.run(workers)

    [failed] = run.statuses(ev.JobFailed)
    assert (failed.job_id, failed.stage) == (request.job_id, "transcode")
    for text in (failed.reason, *(f.error for f in run.statuses(ev.RenditionFailed))):
        assert text and "://" not in text and "X-Amz" not in text  # no presigned URL shown
    final = [f for f in run.statuses(ev.RenditionFailed) if f.final]
    assert sorted(f.height for f in final) == [144, 180, 240]
    assert all(f.attempt == 1 for f in final)  # the input is the problem: no retry
    assert not run.statuses(ev.JobCompleted)
    letters = {d.raw: d for d in run.out.of(run.dlq, ev.DeadLetter)}
    assert set(letters) == {garbage, ev.encode(request)}
    assert letters[ev.encode(request)].error == failed.reason
    # the job's other units (on other workers, maybe) are stopped through vidflow.jobs
    stops = run.out.of(run.jobs, ev.TranscodeCancel)
    assert [(s.job_id, s.plan is not None) for s in stops] == [(request.job_id, True)]
