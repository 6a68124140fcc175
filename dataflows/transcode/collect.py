"""The ``collect`` step (key: video): a job's units land, then its previews, then its end.

It rewrites the HLS master playlist as each unit's rungs land (playable before the ladder is
done), makes the poster and sprite in a polled child process once every unit is in, and reports
the job's end: ``job.completed``, ``job.failed`` (+ the request to ``vidflow.dlq``) or
``job.cancelled``. A unit that failed for good stops the job's other units, which may run on
other workers, by writing a ``transcode.cancel`` naming this planning to ``vidflow.jobs``: the
dataflow has no cycles, so the way round is through Kafka.

The master playlist is the one write done here on the worker thread: one small text object,
written as a rung lands; a cancel's clean-up of unfinished rungs is the other. Both are a few
bounded requests to the object store, nothing like an encode or a remux.
"""

from __future__ import annotations

import copy
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bytewax.operators import StatefulLogic

from dataflows.kafka_io import Outbound
from dataflows.transcode import metrics
from dataflows.transcode.context import Sequenced, TranscodeContext
from dataflows.transcode.messages import CollectMessage, JobClosed, JobOpened, JobPlan, UnitOutcome
from dataflows.transcode.outputs import RenditionStore, preview_inputs
from dataflows.transcode.runner import ChildTask
from dataflows.transcode.state import CollectState
from dataflows.transcode.tasks import (
    PreviewResult,
    PreviewSpec,
    child_argv,
    read_result,
    write_spec,
)
from vidflow import events as ev
from vidflow.logs import get_logger

__all__ = ["CollectLogic"]

log = get_logger("vidflow.transcode")


class CollectLogic(StatefulLogic[CollectMessage, Outbound, CollectState]):
    """Gather one video's unit outcomes into the job's end."""

    def __init__(self, ctx: TranscodeContext, resumed: CollectState | None) -> None:
        self.ctx = ctx
        self.events = Sequenced(ctx)
        self.state = resumed or CollectState()
        self.child: ChildTask | None = None
        # previews that were being made when the old process died are made again (on_notify)

    # ---------------------------------------------------------------- bytewax callbacks

    def on_item(self, value: CollectMessage) -> tuple[list[Outbound], bool]:
        try:
            out = self._on_item(value)
        except Exception as exc:  # noqa: BLE001 - a bug or an outage fails the job, not the flow
            out = self._crashed(exc)
        return out, StatefulLogic.RETAIN

    def on_notify(self) -> tuple[list[Outbound], bool]:
        try:
            out = self._previews_tick()
        except Exception as exc:  # noqa: BLE001 - as above
            out = self._crashed(exc)
        return out, StatefulLogic.RETAIN

    def on_eof(self) -> tuple[list[Outbound], bool]:
        return [], StatefulLogic.RETAIN

    def notify_at(self) -> datetime | None:
        if not self.state.previewing:
            return None
        return datetime.now(UTC) + timedelta(seconds=self.ctx.settings.transcode.poll_interval)

    def snapshot(self) -> CollectState:
        return copy.deepcopy(self.state)

    # ---------------------------------------------------------------- helpers

    def _status(self, cls: type[ev.StatusBase], stable_id: str, **fields: Any) -> Outbound:
        plan = self.state.plan
        assert plan is not None
        return self.events.status(
            cls,
            video_id=plan.video_id,
            run=plan.job_id,
            seq=self.state.next_seq(),
            stable_id=stable_id,
            **fields,
        )

    def _store(self, plan: JobPlan) -> RenditionStore:
        return RenditionStore(
            self.ctx.client, plan.request.source.bucket, self.ctx.layout, plan.video_id
        )

    def _workdir(self, plan: JobPlan) -> Path:
        return self.ctx.workroot / plan.video_id / plan.job_id / "collect"

    def _end(self) -> None:
        if self.child is not None:
            self.child.kill()
            self.child = None
        if self.state.plan is not None:
            shutil.rmtree(self._workdir(self.state.plan), ignore_errors=True)
        self.state.close()

    def _crashed(self, exc: Exception) -> list[Outbound]:
        log.exception("collect step failed")
        if self.state.plan is None:
            return []
        return self._fail(f"internal error: {type(exc).__name__}: {exc}")

    def _adopt(self, plan: JobPlan) -> bool:
        """Make ``plan`` the current job unless it ended already; whether it is current."""
        if plan.job_id in self.state.closed:
            return False
        current = self.state.plan
        if current is None or current.job_id != plan.job_id:
            if current is not None:  # superseded; plan sends its JobClosed too
                self._end()
            self.state.plan = plan
        return True

    # ---------------------------------------------------------------- the job's life

    def _on_item(self, value: CollectMessage) -> list[Outbound]:
        if isinstance(value, JobClosed):
            plan = self.state.plan
            if plan is None or plan.job_id != value.job_id:
                if value.job_id not in self.state.closed:
                    self.state.closed = [*self.state.closed, value.job_id][-8:]
                return []
            return self._cancel(value.reason)
        if not self._adopt(value.plan):
            return []
        plan = value.plan
        if isinstance(value, JobOpened):
            return self._fail(plan.error) if plan.error else []
        return self._landed(value)

    def _landed(self, outcome: UnitOutcome) -> list[Outbound]:
        plan = outcome.plan
        if not outcome.ok:
            return self._fail(outcome.error, stop_units=True)
        if outcome.unit_id in self.state.done_units:
            return []
        self.state.done_units.add(outcome.unit_id)
        self.state.renditions.update(outcome.renditions)
        self.state.entries.update(outcome.entries)
        self._store(plan).write_master(list(self.state.entries.values()))
        if set(plan.units) <= self.state.done_units and not self.state.previewing:
            self.state.previewing = True
            return self._previews_tick()
        return []

    def _previews_tick(self) -> list[Outbound]:
        plan = self.state.plan
        if plan is None or not self.state.previewing:
            return []
        workdir = self._workdir(plan)
        if self.child is None:  # start it (again, after a resume)
            renditions = self.state.renditions
            top = max(renditions)
            planned = plan.planned_for(top)
            poster, sprite = preview_inputs({label: r.width for label, r in renditions.items()})
            spec = PreviewSpec(
                video_id=plan.video_id,
                bucket=plan.request.source.bucket,
                workdir=str(workdir),
                poster_key=renditions[poster].key,
                sprite_key=renditions[sprite].key,
                duration=plan.request.probe.duration,
                width=planned.width,
                height=planned.height,
            )
            shutil.rmtree(workdir, ignore_errors=True)
            write_spec(spec, workdir / "previews.json")
            self.child = ChildTask(
                child_argv(workdir / "previews.json", workdir / "previewed.json"),
                workdir / "previews.log",
            )
            return []
        code = self.child.exit_code()
        if code is None:
            return []
        child, self.child = self.child, None
        if code != 0:
            return self._fail(f"previews failed: {child.output_tail()[-500:]}")
        previews = read_result(workdir / "previewed.json", PreviewResult)
        return self._complete(previews)

    def _complete(self, previews: PreviewResult) -> list[Outbound]:
        plan = self.state.plan
        assert plan is not None
        master = self._store(plan).write_master(list(self.state.entries.values()))
        renditions = sorted(self.state.renditions.values(), key=lambda r: -r.height)
        out = [
            self._status(
                ev.JobCompleted,
                stable_id="job.completed",
                job_id=plan.job_id,
                renditions=renditions,
                master=master,
                poster=previews.poster,
                sprite=previews.sprite,
                sprite_vtt=previews.vtt,
            )
        ]
        metrics.JOBS.labels(status="completed").inc()
        log.info("job completed", video=plan.video_id, rungs=sorted(self.state.renditions))
        self._end()
        return out

    def _fail(self, reason: str, stop_units: bool = False) -> list[Outbound]:
        plan = self.state.plan
        assert plan is not None
        topic, partition, offset = plan.position
        letter = ev.dead_letter(
            raw=ev.encode(plan.request),
            key=plan.video_id,
            topic=topic,
            partition=partition,
            offset=offset,
            error=reason,
            stage="transcode",
        )
        kafka = self.ctx.settings.kafka
        out = [
            self._status(
                ev.JobFailed,
                stable_id="job.failed",
                reason=reason,
                job_id=plan.job_id,
                stage="transcode",
            ),
            Outbound(kafka.topic_dlq, letter),
        ]
        if stop_units and len(plan.units) > 1:
            stop = ev.TranscodeCancel(
                id=ev.event_id(plan.job_id, plan.nonce, "stop-units"),
                video_id=plan.video_id,
                job_id=plan.job_id,
                plan=plan.nonce,
            )
            out.append(Outbound(kafka.topic_jobs, stop))
        metrics.JOBS.labels(status="failed").inc()
        log.warning("job failed", video=plan.video_id, reason=reason)
        self._end()
        return out

    def _cancel(self, reason: str) -> list[Outbound]:
        plan = self.state.plan
        assert plan is not None
        unfinished = [p.label for p in plan.planned if p.label not in self.state.renditions]
        self._store(plan).remove_unfinished(unfinished)
        out = [self._status(ev.JobCancelled, stable_id="job.cancelled", job_id=plan.job_id)]
        metrics.JOBS.labels(status="cancelled").inc()
        log.info("job cancelled", video=plan.video_id, reason=reason)
        self._end()
        return out
