"""``collect`` reports a cancelled job as soon as every unit is stopped, in whatever order the
stops and the job's close reach it.

On several workers a unit runs on another worker than its video's ``collect``: its
``UnitStopped`` can come before the ``JobClosed`` (even before the ``JobOpened``) that ``plan``
sent straight to ``collect``. Found by the in-process flow test on two workers, where the job was
reported cancelled only after the 60 s give-up.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from bytewax.operators import StatefulLogic

from connectors.storage import make_client
from core import events as ev
from core.profiles import load_profiles
from core.settings import load_settings
from dataflows.kafka_io import Outbound
from dataflows.transcode.cluster import ClusterShape
from dataflows.transcode.collect import CollectLogic
from dataflows.transcode.context import TranscodeContext
from dataflows.transcode.messages import CollectMessage, JobClosed, JobOpened, UnitStopped
from dataflows.transcode.plan import make_plan

VIDEO = "v1"
JOB = "job-1"


def context(home: Path) -> TranscodeContext:
    settings = load_settings({"VIDFLOW_HOME": str(home)})
    profiles = load_profiles("")
    return TranscodeContext(
        settings, make_client(settings.storage), profiles, ClusterShape(workers_per_process=2),
        "rung",
    )  # fmt: skip


def request() -> ev.TranscodeRequested:
    source = ev.SourceRef(bucket="vidflow", key=f"sources/{VIDEO}/source", size=1, sha256="0" * 64)
    known = ev.Probe(duration=1.0, width=640, height=480)
    return ev.TranscodeRequested(
        id="r1", video_id=VIDEO, job_id=JOB, source=source, probe=known, profile="default"
    )


class Step:
    """One key of the ``collect`` step as Bytewax drives it: a discarded state starts anew."""

    def __init__(self, ctx: TranscodeContext) -> None:
        self.ctx = ctx
        self.logic: CollectLogic | None = None
        self.out: list[Outbound] = []

    def feed(self, item: CollectMessage) -> None:
        if self.logic is None:
            self.logic = CollectLogic(self.ctx, None)
        out, retain = self.logic.on_item(item)
        self.out += out
        if retain is StatefulLogic.DISCARD:
            self.logic = None

    def cancelled(self) -> list[ev.Event]:
        return [o.event for o in self.out if isinstance(o.event, ev.JobCancelled)]


@pytest.mark.parametrize("stopped_first", [1, 2], ids=["one-stop-first", "two-stops-first"])
def test_units_stopped_before_the_job_is_opened_or_closed_still_count(
    stopped_first: int, tmp_path: Path
) -> None:
    ctx = context(tmp_path)
    plan, tasks, _ = make_plan(ctx, request(), ("jobs", 0, 0))
    units = [t.unit_id for t in tasks]
    assert len(units) == 4  # 480, 360, 240, 144 in rung mode
    step = Step(ctx)
    for unit in units[:stopped_first]:  # a stop overtakes plan's messages
        step.feed(UnitStopped(VIDEO, JOB, unit))
    step.feed(JobOpened(plan))
    step.feed(JobClosed(VIDEO, JOB, "cancelled on request"))
    for unit in units[stopped_first:]:
        step.feed(UnitStopped(VIDEO, JOB, unit))

    assert [e.job_id for e in step.cancelled()] == [JOB]  # type: ignore[attr-defined]


def test_a_stop_for_a_job_closed_elsewhere_leaves_no_state_behind(tmp_path: Path) -> None:
    ctx = context(tmp_path)
    step = Step(ctx)
    step.feed(UnitStopped(VIDEO, JOB, "240p"))
    step.feed(JobClosed(VIDEO, JOB, "superseded by a newer job"))  # never opened here
    assert step.logic is None or step.logic.state.stopped == {}
    assert step.cancelled() == []
