"""The ``plan`` step (key: video): a request becomes encode units spread over the workers.

It owns which job is a video's current one: a request for a new job supersedes the running one,
a replayed duplicate of the running job is dropped, and a cancel is forwarded to every unit and
to ``collect``. It never touches FFmpeg or storage, so it never holds a worker.

A video's state is discarded ``state_ttl`` after its latest planning (a ``notify_at`` timer):
this step cannot see a job end (that is ``collect``'s, downstream), so the setting must outlast
the longest job; within it a replayed duplicate is dropped, after it a replay runs the job again
(idempotent outputs).
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime

from bytewax.operators import StatefulLogic

from core import events as ev
from core.errors import public_reason
from core.logs import get_logger
from dataflows.kafka_io import Inbound
from dataflows.transcode.cluster import unit_routing_keys
from dataflows.transcode.context import TranscodeContext
from dataflows.transcode.convert import plan_conversion
from dataflows.transcode.ladder import plan_ladder
from dataflows.transcode.messages import (
    JobClosed,
    JobOpened,
    JobPlan,
    Routed,
    UnitCancel,
    UnitTask,
    VideoPurge,
)
from dataflows.transcode.state import PlanState, group_units

__all__ = ["PlanLogic", "make_plan"]

log = get_logger("vidflow.transcode")


def make_plan(
    ctx: TranscodeContext, request: ev.TranscodeRequested, position: tuple[str, int, int]
) -> tuple[JobPlan, list[UnitTask], dict[str, str]]:
    """The plan of ``request``, its unit tasks and their routing keys."""
    profile = ctx.profiles.get(request.profile)
    nonce = uuid.uuid4().hex
    if profile is None:
        known = ", ".join(ctx.profiles)
        error = f"unknown profile {request.profile!r} (known: {known})"
        return JobPlan(request, position, (), (), nonce, error), [], {}
    if profile.kind == "ladder":
        planned = plan_ladder(request.probe, profile.rungs)
    else:  # a conversion profile makes one output (dataflows.transcode.convert)
        try:
            planned = [plan_conversion(request.probe, profile)]
        except ValueError as exc:
            return JobPlan(request, position, (), (), nonce, public_reason(str(exc))), [], {}
    units = group_units(planned, ctx.unit_mode)
    plan = JobPlan(request, position, tuple(planned), tuple(u.unit_id for u in units), nonce)
    keys = unit_routing_keys(f"{request.video_id}/{request.job_id}", plan.units, ctx.shape.workers)
    tasks = [UnitTask(plan, u.unit_id, u.labels, keys[u.unit_id], u.early) for u in units]
    return plan, tasks, keys


class PlanLogic(StatefulLogic[Inbound, Routed, PlanState]):
    """Plans, supersedes and cancels one video's jobs."""

    def __init__(self, ctx: TranscodeContext, resumed: PlanState | None) -> None:
        self.ctx = ctx
        self.state = resumed

    def on_item(self, value: Inbound) -> tuple[list[Routed], bool]:
        event = value.event
        out: list[Routed] = []
        if isinstance(event, ev.TranscodeRequested):
            if self.state is not None and self.state.plan.job_id == event.job_id:
                return out, self._retain()  # a duplicate of the current job
            if self.state is not None:
                out += self._close("superseded by a newer job")
            plan, tasks, keys = make_plan(
                self.ctx, event, (value.topic, value.partition, value.offset)
            )
            expires = time.time() + self.ctx.settings.transcode.state_ttl
            self.state = PlanState(plan, keys, expires)
            log.info(
                "job planned",
                video=event.video_id,
                job=event.job_id,
                mode=self.ctx.unit_mode,
                units={t.unit_id: list(t.labels) for t in tasks},
            )
            out.append(JobOpened(plan))
            out += tasks
        elif isinstance(event, ev.TranscodeCancel) and self._applies(event):
            out += self._close("cancelled on request" if event.plan is None else "job failed")
        elif isinstance(event, ev.VideoDelete):
            if self.state is not None:  # stop the running job first; collect waits for it
                out += self._close("video deleted")
                self.state = None
            out.append(VideoPurge(event))
        return out, self._retain()

    def _applies(self, cancel: ev.TranscodeCancel) -> bool:
        """A cancel names the current job (or any); the flow's own cancel after a unit failed
        names the planning too, so a replayed one never stops a later planning of the job."""
        if self.state is None or cancel.job_id not in (None, self.state.plan.job_id):
            return False
        return cancel.plan is None or cancel.plan == self.state.plan.nonce

    def _close(self, reason: str) -> list[Routed]:
        state = self.state
        assert state is not None
        plan = state.plan
        out: list[Routed] = [
            UnitCancel(plan.job_id, key, plan.video_id, unit)
            for unit, key in state.unit_keys.items()
        ]
        out.append(JobClosed(plan.video_id, plan.job_id, reason))
        return out

    def on_notify(self) -> tuple[list[Routed], bool]:
        return [], self._retain()

    def on_eof(self) -> tuple[list[Routed], bool]:
        return [], self._retain()

    def notify_at(self) -> datetime | None:
        if self.state is None or self.state.expires == float("inf"):
            return None
        return datetime.fromtimestamp(self.state.expires, UTC)

    def _retain(self) -> bool:
        if self.state is None or self.state.expires <= time.time():
            return StatefulLogic.DISCARD
        return StatefulLogic.RETAIN

    def snapshot(self) -> PlanState:
        assert self.state is not None
        return self.state
