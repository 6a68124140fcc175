"""The ``collect`` step (key: video): a job's units land, then its previews, then its end.

It rewrites the HLS master playlist as each unit's rungs land (playable before the ladder is
done), makes the poster and sprite in a polled child process once every unit is in, and reports
the job's end: ``job.completed``, ``job.failed`` (+ the request to ``vidflow.dlq``) or
``job.cancelled``. A unit that failed for good stops the job's other units, which may run on
other workers, by writing a ``transcode.cancel`` naming this planning to ``vidflow.jobs``: the
dataflow has no cycles, so the way round is through Kafka.

Nothing here calls the object store on the worker thread, where an outage would stall every key
and snapshot of the worker: the master playlist is (re)written by a small polled child as rungs
land (and by the previews child at the end, before ``job.completed``); a cancel is reported once
every unit is stopped, each unit having removed its own partial uploads (``encode``).

With no job running, a video's state is a tombstone (the last job ids), dropped ``state_ttl``
after the job ended (``notify_at``)."""

from __future__ import annotations

import copy
import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bytewax.operators import StatefulLogic

from core import events as ev
from core.errors import public_reason
from core.logs import get_logger
from dataflows.children import Failed
from dataflows.kafka_io import Outbound
from dataflows.transcode import metrics
from dataflows.transcode.context import Sequenced, TranscodeContext
from dataflows.transcode.master_writes import MasterWrites
from dataflows.transcode.messages import (
    CollectMessage,
    JobClosed,
    JobOpened,
    JobPlan,
    UnitLive,
    UnitOutcome,
    UnitStopped,
    VideoPurge,
)
from dataflows.transcode.outputs import preview_inputs
from dataflows.transcode.previews import JobPreviews
from dataflows.transcode.removal import Removal
from dataflows.transcode.state import Cancelling, CollectState
from dataflows.transcode.tasks import PreviewResult, PreviewSpec
from dataflows.transcode.truncation import truncation_reason

__all__ = ["CollectLogic"]

log = get_logger("vidflow.transcode")

CANCEL_GIVE_UP = 60.0  # seconds to wait for units to report stopped before job.cancelled anyway


class CollectLogic(StatefulLogic[CollectMessage, Outbound, CollectState]):
    """Gather one video's unit outcomes into the job's end."""

    def __init__(self, ctx: TranscodeContext, resumed: CollectState | None) -> None:
        self.ctx = ctx
        self.events = Sequenced(ctx)
        self.state = resumed or CollectState()
        self.previews = JobPreviews()  # warm once the job plays (previews.py)
        self.master = MasterWrites()  # the playlist rewritten as rungs land
        self.removal = Removal()  # of a deleted video's objects
        # previews that were being made when the old process died are made again (on_notify)
        if self.state.plan is not None and self.state.entries and not self.state.previewing:
            self.state.master_dirty = True  # its writer may have died with the old process

    def on_item(self, value: CollectMessage) -> tuple[list[Outbound], bool]:
        try:
            out = self._on_item(value)
            out += self._tick()
        except Exception as exc:  # noqa: BLE001 - a bug or an outage fails the job, not the flow
            out = self._crashed(exc)
        return out, self._retain()

    def on_notify(self) -> tuple[list[Outbound], bool]:
        try:
            out = self._tick()
        except Exception as exc:  # noqa: BLE001 - as above
            out = self._crashed(exc)
        return out, self._retain()

    def on_eof(self) -> tuple[list[Outbound], bool]:
        self.master.drop_warm()  # the input is over: no job's first write comes
        self.previews.drop_warm()
        return [], self._retain()

    def notify_at(self) -> datetime | None:
        state, t = self.state, self.ctx.settings.transcode
        if state.idle and not self.master.running:
            return datetime.fromtimestamp(state.ended_at + self._ttl(), UTC)
        urgent = self.master.child or self.previews.running
        period = t.urgent_poll_interval if urgent else t.poll_interval
        return datetime.now(UTC) + timedelta(seconds=period)

    def snapshot(self) -> CollectState:
        return copy.deepcopy(self.state)

    def _ttl(self) -> float:
        return self.ctx.settings.transcode.state_ttl

    def _retain(self) -> bool:
        state = self.state
        if state.idle and not self.master.running and state.ended_at + self._ttl() <= time.time():
            return StatefulLogic.DISCARD
        return StatefulLogic.RETAIN

    def _tick(self) -> list[Outbound]:
        settings = self.ctx.settings
        deadline = self._child_deadline()
        self.master.tick(self.state, self.ctx.workroot, settings.storage.bucket, deadline)
        out = self._cancels_tick()
        out += self._previews_tick()
        return out + self._purge_tick()

    def _child_deadline(self) -> float:
        return self.ctx.settings.transcode.child_timeout

    def _cancels_tick(self) -> list[Outbound]:
        out: list[Outbound] = []
        now = time.time()
        for job_id, cancelling in list(self.state.cancelling.items()):
            if cancelling.pending and now - cancelling.since < CANCEL_GIVE_UP:
                continue
            if cancelling.pending:
                log.warning("units did not report stopped", job=job_id, units=cancelling.pending)
            del self.state.cancelling[job_id]
            out.append(self._cancelled(cancelling))
        return out

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

    def _workdir(self, plan: JobPlan) -> Path:
        return self.ctx.workroot / plan.video_id / plan.job_id / "collect"

    def _end(self) -> None:
        self.previews.cancel()
        if self.state.plan is not None:
            metrics.job_ended(self.state.plan.job_id)
            shutil.rmtree(self._workdir(self.state.plan), ignore_errors=True)
        self.state.close()
        self.state.ended_at = time.time()

    def _crashed(self, exc: Exception) -> list[Outbound]:
        plan = self.state.plan
        log.exception("collect step failed", video=plan.video_id if plan else "")
        if plan is None:
            return []
        return self._fail(public_reason("internal error", exc))

    def _adopt(self, plan: JobPlan) -> bool:
        """Make ``plan`` the current job unless it ended already; whether it is current."""
        if plan.job_id in self.state.closed:
            return False
        current = self.state.plan
        if current is None or current.job_id != plan.job_id:
            if current is not None:  # superseded; plan sends its JobClosed too
                self._end()
            self.state.plan = plan
            metrics.job_started(plan.job_id, plan.request.probe.duration)
        return True

    def _on_item(self, value: CollectMessage) -> list[Outbound]:
        if isinstance(value, VideoPurge):
            if all(d.id != value.request.id for d in self.state.purging):
                self.state.purging = [*self.state.purging, value.request]
            return []
        if isinstance(value, UnitStopped):
            cancelling = self.state.cancelling.get(value.job_id)
            if cancelling is not None:
                cancelling.pending.discard(value.unit_id)
            elif value.job_id not in self.state.closed:
                # on several workers a unit can hear of the cancel before this step hears of the
                # job's close (or of the job): kept for when the close comes
                self.state.stopped.setdefault(value.job_id, set()).add(value.unit_id)
            return []
        if isinstance(value, JobClosed):
            plan = self.state.plan
            if plan is None or plan.job_id != value.job_id:
                self.state.stopped.pop(value.job_id, None)
                if value.job_id not in self.state.closed:
                    self.state.closed = [*self.state.closed, value.job_id][-8:]
                return []
            return self._cancel(value.reason)
        if not self._adopt(value.plan):
            return []
        plan = value.plan
        if isinstance(value, JobOpened):
            return self._fail(plan.error) if plan.error else []
        if isinstance(value, UnitLive):
            self._live(value)
            return []
        return self._landed(value)

    def _live(self, live: UnitLive) -> None:
        """Tracks still encoding have fragments up: list them in the master now (a track whose
        unit landed already keeps its final entry)."""
        if live.unit_id in self.state.done_units or self.state.previewing:
            return
        for label, entry in live.entries.items():
            self.state.entries.setdefault(label, entry)
        # a master of the audio alone would list nothing to play
        self.state.master_dirty |= any(e.kind != "audio" for e in self.state.entries.values())

    def _landed(self, outcome: UnitOutcome) -> list[Outbound]:
        plan = outcome.plan
        if not outcome.ok:
            return self._fail(outcome.error, stop_units=True)
        if outcome.unit_id in self.state.done_units:
            return []
        self.state.done_units.add(outcome.unit_id)
        self.state.renditions.update(outcome.renditions)
        self.state.entries.update(outcome.entries)
        self.state.durations.update(outcome.durations)
        short = truncation_reason(plan.request.probe.duration, outcome.durations)
        if short and self.ctx.settings.transcode.truncated == "fail":
            log.warning("renditions truncated", video=plan.video_id, durations=outcome.durations)
            return self._fail(short, stop_units=True)
        if set(plan.units) <= self.state.done_units and not self.state.previewing:
            self.state.previewing = True  # the previews child writes the final master
        else:
            self.state.master_dirty = True
        return []

    def _previews_tick(self) -> list[Outbound]:
        plan = self.state.plan
        if plan is None:
            return []
        workdir = self._workdir(plan)
        if not self.state.previewing:
            if any(e.kind != "audio" for e in self.state.entries.values()):  # the job plays
                self.previews.prepare(plan.job_id, workdir, self._child_deadline())
            return []
        running = self.previews.running
        if not running and set(self.state.renditions) == {0}:  # audio only: no previews
            return self._complete(PreviewResult(poster="", sprite="", vtt="", master=""))
        if not running and self.master.child is not None:
            return []  # a rung's master write still in flight would land after the final one
        if not running:  # start it (again, after a resume)
            renditions = self.state.renditions
            top = max(renditions)
            planned = plan.planned_for(top)
            poster, sprite = preview_inputs({label: r.width for label, r in renditions.items()})
            spec = PreviewSpec(
                video_id=plan.video_id, job_id=plan.job_id, workdir=str(workdir),
                bucket=self.ctx.settings.storage.bucket, poster_key=renditions[poster].key,
                sprite_key=renditions[sprite].key, duration=plan.request.probe.duration,
                width=planned.width, height=planned.height,
                entries=list(self.state.entries.values()),
            )  # fmt: skip
            self.previews.start(spec, workdir, self._child_deadline())
            return []
        outcome = self.previews.poll()
        if outcome is None:
            return []
        if isinstance(outcome, Failed):
            log.warning("previews failed", video=plan.video_id, output=outcome.detail)
            return self._fail(outcome.reason)
        return self._complete(outcome.result)

    def _complete(self, previews: PreviewResult) -> list[Outbound]:
        plan = self.state.plan
        assert plan is not None
        master = previews.master
        renditions = sorted(self.state.renditions.values(), key=lambda r: -r.height)
        short = truncation_reason(plan.request.probe.duration, self.state.durations)
        warnings = ([short] if short else []) + [public_reason(w) for w in previews.warnings]
        if short:
            log.warning("renditions truncated", video=plan.video_id, durations=self.state.durations)
        previewed = max(0.0, round(time.monotonic() - self.previews.started_at, 3))  # the bench
        out = [
            self._status(
                ev.JobCompleted, stable_id="job.completed", job_id=plan.job_id,
                renditions=renditions, master=master, poster=previews.poster,
                sprite=previews.sprite, sprite_vtt=previews.vtt, warnings=warnings,
                phases={"previews": previewed},
            )
        ]  # fmt: skip
        metrics.JOBS.labels(status="completed").inc()
        log.info("job completed", video=plan.video_id, rungs=sorted(self.state.renditions),
                 previews=previewed)  # fmt: skip
        self._end()
        return out

    def _fail(self, reason: str, stop_units: bool = False) -> list[Outbound]:
        """``reason`` is public already (every caller builds it with ``public_reason``); it is
        scrubbed once more here, the one door to ``job.failed`` and the dead letter."""
        plan = self.state.plan
        assert plan is not None
        reason = public_reason(reason)
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
        """Wait for every unit to be stopped (its children dead, its partial uploads removed),
        then report ``job.cancelled`` (``_cancels_tick``)."""
        plan = self.state.plan
        assert plan is not None
        self.master.cancel()  # the units' clean-up removes what it wrote
        pending = set(plan.units) - self.state.stopped.pop(plan.job_id, set())
        self.state.cancelling[plan.job_id] = Cancelling(
            plan, self.state.seq, pending, reason, time.time()
        )
        self._end()
        return []

    def _purge_tick(self) -> list[Outbound]:
        """A delete runs once the video's job is stopped (every unit reported, or given up on):
        a child removes every object of the video, then ``video.deleted`` is reported for each
        delete that waited. Its id comes from the delete's, so a replay reports the same."""
        if not self.state.purging or self.state.cancelling or self.removal.waiting():
            return []
        first = self.state.purging[0]
        workdir = self.ctx.workroot / first.video_id / f"delete-{first.id}"
        if not self.removal.running:
            if self.state.plan is not None:  # a job plan never heard of (its state expired)
                self._end()
            self.master.cancel()  # it would write the master playlist back
            bucket = self.ctx.settings.storage.bucket
            self.removal.start(first.video_id, bucket, workdir, self._child_deadline())
            return []
        removed = self.removal.poll(first.video_id, workdir)
        if removed is None:
            return []
        out = [
            self.events.status(
                ev.VideoDeleted,
                video_id=d.video_id,
                run=d.id,
                seq=1,
                stable_id="video.deleted",
                requested_by=d.requested_by,
            )
            for d in self.state.purging
        ]
        log.info("video deleted", video=first.video_id, removed=len(removed))
        self.state.purging = []
        self.state.ended_at = time.time()
        return out

    def _cancelled(self, cancelling: Cancelling) -> Outbound:
        plan = cancelling.plan
        cancelling.seq += 1
        out = self.events.status(ev.JobCancelled, video_id=plan.video_id, run=plan.job_id,
                                 seq=cancelling.seq, stable_id="job.cancelled",
                                 job_id=plan.job_id)  # fmt: skip
        metrics.JOBS.labels(status="cancelled").inc()
        log.info("job cancelled", video=plan.video_id, reason=cancelling.reason)
        self.state.ended_at = time.time()
        return out
