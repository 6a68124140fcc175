"""A ``transcode.requested`` is believed only as far as the layout agrees with it: the source must
be the one the object layout derives for the video id, in the configured bucket, with a known
profile; anything else is a dead letter with a public reason, never a job (issue 9, obs. 3)."""

from __future__ import annotations

import bytewax.operators as op
import pytest
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSink, TestingSource, cluster_main, run_main

from core import events as ev
from core.errors import is_public
from core.layout import ObjectLayout
from core.settings import Settings
from dataflows.kafka_io import Inbound
from dataflows.transcode.validate import RequestRules, request_problem, screen_requests

SETTINGS = Settings()
LAYOUT = ObjectLayout(SETTINGS.storage)
RULES = RequestRules(SETTINGS.storage.bucket, LAYOUT, frozenset({"default", "test"}))


def request(
    video: str = "video-a",
    key: str | None = None,
    bucket: str | None = None,
    profile: str = "test",
    job: str = "job-1",
) -> ev.TranscodeRequested:
    return ev.TranscodeRequested(
        id=f"{video}-{job}", video_id=video, job_id=job, profile=profile,
        source=ev.SourceRef(
            bucket=bucket or SETTINGS.storage.bucket, key=key or LAYOUT.source(video),
            size=1, sha256="0" * 64,
        ),
        probe=ev.Probe(duration=2.0, width=480, height=270, fps=25.0),
    )  # fmt: skip


def test_the_source_the_layout_derives_is_accepted() -> None:
    assert request_problem(request(), RULES) is None
    assert request_problem(request(key=LAYOUT.source("video-a", ".mp4")), RULES) is None


@pytest.mark.parametrize(
    ("forged", "words"),
    [
        (request(key=LAYOUT.source("video-b")), "source key"),  # A's id, B's source
        (request(key="sources/video-a/../video-b/source"), "source key"),
        (request(key=LAYOUT.source("video-a") + "/../../video-b/source"), "source key"),
        (request(key=LAYOUT.rendition("video-a", 240)), "source key"),
        (request(bucket="someone-elses"), "bucket"),
        (request(profile="nope"), "profile"),
        (request(video="../../etc", key=LAYOUT.source("../../etc")), "video id"),
        (request(job="../x"), "job id"),
    ],
)
def test_anything_else_is_refused_with_a_public_reason(
    forged: ev.TranscodeRequested, words: str
) -> None:
    problem = request_problem(forged, RULES)
    assert problem is not None and words in problem
    assert is_public(problem) and "\n" not in problem


@pytest.mark.parametrize("workers", [1, 2])
def test_the_flow_step_sends_a_forged_request_to_the_dlq_and_keeps_the_rest(
    workers: int,
) -> None:
    good = Inbound(request(), "vidflow.jobs", 0, 1)
    forged = Inbound(request(key=LAYOUT.source("video-b")), "vidflow.jobs", 1, 2)
    cancel = Inbound(ev.TranscodeCancel(id="c", video_id="video-a"), "vidflow.jobs", 0, 3)
    oks: list[Inbound] = []
    errs: list[ev.DeadLetter] = []
    flow = Dataflow("screen-test")
    split = screen_requests("screen", op.input("in", flow, TestingSource([good, forged, cancel])),
                            RULES)  # fmt: skip
    op.output("oks", split.oks, TestingSink(oks))
    op.output("errs", split.errs, TestingSink(errs))
    if workers == 1:
        run_main(flow)  # type: ignore[no-untyped-call]
    else:
        cluster_main(flow, [], 0, worker_count_per_proc=workers)  # type: ignore[no-untyped-call]
    assert sorted(i.offset for i in oks) == [1, 3]
    assert len(errs) == 1
    letter = errs[0]
    assert (letter.source_topic, letter.partition, letter.offset) == ("vidflow.jobs", 1, 2)
    assert letter.original_key == "video-a" and letter.stage == "validate"
    assert ev.decode(letter.raw) == forged.event
    assert "source key" in letter.error and is_public(letter.error)
