"""The ``encode`` step (key: one unit's routing key): one FFmpeg run, then its publication.

Never blocks its worker: FFmpeg, the live publishing of its fragments (``live_unit``) and the
publishing of the finished tracks run as child processes this logic starts and then polls on
Bytewax timers (``notify_at``), so other units, steps and snapshots go on meanwhile. At most
``max_encodes_per_worker`` FFmpeg encodes run per worker; a unit waits for a slot. A resumed
unit that was running starts again (its children died with the old process).

Its status events form their own run, ``{job_id}:{unit_id}``, with their own sequence, since
the units of a job run on different workers.
"""

from __future__ import annotations

import copy
import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bytewax.operators import StatefulLogic

from connectors.ffmpeg import stderr_reason
from core import events as ev
from core.errors import public_reason
from core.logs import get_logger
from dataflows.children import Failed, SpecTask
from dataflows.kafka_io import Outbound
from dataflows.transcode import metrics
from dataflows.transcode.commands import AUDIO_TRACK
from dataflows.transcode.context import Sequenced, TranscodeContext
from dataflows.transcode.live_unit import LiveFollower, unit_audio_kbps
from dataflows.transcode.messages import (
    EncodeMessage,
    UnitLive,
    UnitOutcome,
    UnitStopped,
    UnitTask,
)
from dataflows.transcode.outcomes import unit_outcome
from dataflows.transcode.progress import ProgressThrottle
from dataflows.transcode.publishing import UnitPublishing
from dataflows.transcode.runner import FFmpegRun, classify_failure
from dataflows.transcode.slots import UnitSlot
from dataflows.transcode.state import EncodeState, UnitStatus
from dataflows.transcode.tasks import CleanupResult, CleanupSpec, PublishSpec, start
from dataflows.transcode.unit_command import unit_command

__all__ = ["EncodeLogic", "EncodeOut"]

log = get_logger("vidflow.transcode")

EncodeOut = Outbound | UnitOutcome | UnitLive | UnitStopped


class EncodeLogic(StatefulLogic[EncodeMessage, EncodeOut, EncodeState]):
    """Run, follow, retry and publish one encode unit."""

    def __init__(self, ctx: TranscodeContext, resumed: EncodeState | None) -> None:
        self.ctx = ctx
        self.events = Sequenced(ctx)
        self.state = resumed
        self.ffmpeg: FFmpegRun | None = None
        self.publishing = UnitPublishing()  # warm while FFmpeg runs (publishing.py)
        self.cleaning: SpecTask[CleanupResult] | None = None
        self.live = LiveFollower()  # publishes fragments while FFmpeg runs
        self.slot = UnitSlot(ctx)  # early until the job plays (slots.py)
        self.throttle = ProgressThrottle(1.0)
        if resumed is not None and resumed.status in (UnitStatus.ENCODING, UnitStatus.PUBLISHING):
            resumed.status = UnitStatus.PENDING  # its children died with the old process
        # "cleaning": the clean-up child died with the old process; _tick starts it again

    def on_item(self, value: EncodeMessage) -> tuple[list[EncodeOut], bool]:
        out: list[EncodeOut] = []
        try:
            if isinstance(value, UnitTask):
                if self.state is None:
                    self.state = EncodeState(value)
            elif self.state is not None and self.state.task.plan.job_id == value.job_id:
                out += self._cancelled()
            else:  # finished already, or never got here: nothing of it runs
                out.append(UnitStopped(value.video_id, value.job_id, value.unit_id))
            out += self._tick()
        except Exception as exc:  # noqa: BLE001 - a bug or an outage fails the unit, not the flow
            out += self._crashed(exc)
        return out, self._retain()

    def on_notify(self) -> tuple[list[EncodeOut], bool]:
        try:
            out = self._tick()
        except Exception as exc:  # noqa: BLE001 - as above
            out = self._crashed(exc)
        return out, self._retain()

    def on_eof(self) -> tuple[list[EncodeOut], bool]:
        return [], self._retain()

    def notify_at(self) -> datetime | None:
        if self.state is None:
            return None
        t, status = self.ctx.settings.transcode, self.state.status
        # waits whose every period lands on first playable or on the job's end (the first live
        # fragment, FFmpeg's exit, a child's result) are urgent; FFmpeg's progress can wait
        ffmpeg = self.ffmpeg
        urgent = status in (UnitStatus.PUBLISHING, UnitStatus.CLEANING) or (
            status == UnitStatus.ENCODING
            and (self.live.awaited() or (ffmpeg is not None and ffmpeg.near_end()))
        )
        period = t.urgent_poll_interval if urgent else t.poll_interval
        return datetime.now(UTC) + timedelta(seconds=period)

    def snapshot(self) -> EncodeState:
        assert self.state is not None
        return copy.deepcopy(self.state)

    def _retain(self) -> bool:
        return StatefulLogic.RETAIN if self.state is not None else StatefulLogic.DISCARD

    def _status(self, cls: type[ev.StatusBase], stable_id: str = "", **fields: Any) -> Outbound:
        state = self.state
        assert state is not None
        plan = state.task.plan
        return self.events.status(
            cls,
            video_id=plan.video_id,
            run=state.run,
            seq=state.next_seq(),
            stable_id=stable_id,
            id_scope=plan.job_id,
            job_id=plan.job_id,
            **fields,
        )

    def _workdir(self) -> Path:
        assert self.state is not None
        task = self.state.task
        return self.ctx.workroot / task.plan.video_id / task.plan.job_id / task.unit_id

    def _cleanup(self) -> None:
        shutil.rmtree(self._workdir(), ignore_errors=True)

    def _cancelled(self) -> list[EncodeOut]:
        """Kill the children now (SIGKILL, waited for), then remove this job's uploads of this
        unit's rungs in a child (never on the worker thread), then report the unit stopped."""
        state = self.state
        assert state is not None
        log.info("unit cancelled", video=state.task.plan.video_id, unit=state.run)
        self._stop(keep_live=True)  # the live child, running already, removes what it put up
        if not state.published:  # nothing of it reached the bucket: FFmpeg writes locally
            return self._stopped()
        state.status = UnitStatus.CLEANING
        return self._cleaning()

    def _stopped(self) -> list[EncodeOut]:
        state = self.state
        assert state is not None
        task = state.task
        self._cleanup()
        self.state = None
        return [UnitStopped(task.plan.video_id, task.plan.job_id, task.unit_id)]

    def _cleaning(self) -> list[EncodeOut]:
        state = self.state
        assert state is not None
        plan = state.task.plan
        if self.cleaning is None:
            cleaned = self.live.clean_up(self._workdir())  # no Python child to start: quicker
            if cleaned is None:
                return []
            if cleaned:
                return self._stopped()
            spec = CleanupSpec(
                video_id=plan.video_id, job_id=plan.job_id,
                bucket=self.ctx.settings.storage.bucket, labels=list(state.task.labels),
                audio=unit_audio_kbps(state.task) > 0, profile=plan.request.profile,
            )  # fmt: skip
            self.cleaning = start(
                spec, self._workdir(), "cleanup", CleanupResult, self._child_deadline()
            )
            return []
        outcome = self.cleaning.poll()
        if outcome is None:
            return []
        # a failure is logged, not retried: the job is over, and the unit must not hang on
        if isinstance(outcome, Failed):
            log.warning(
                "clean-up failed", video=plan.video_id, unit=state.run, reason=outcome.reason,
                output=outcome.detail[-500:],
            )  # fmt: skip
        self.cleaning = None
        return self._stopped()

    def _child_deadline(self) -> float:
        return self.ctx.settings.transcode.child_timeout

    def _stop(self, keep_live: bool = False) -> None:
        if self.ffmpeg is not None:
            self.ffmpeg.kill()
            self.ffmpeg = None
            self.slot.give()
        if not keep_live:
            self.live.stop()
        self.publishing.cancel()
        if self.cleaning is not None:
            self.cleaning.cancel()
        self.cleaning = None

    def _crashed(self, exc: Exception) -> list[EncodeOut]:
        log.exception("encode step failed", unit=self.state.run if self.state else "")
        if self.state is None:
            return []
        self._stop()
        if self.state.status == UnitStatus.CLEANING:
            return self._stopped()
        return self._failed("transient", public_reason("internal error", exc))

    def _tick(self) -> list[EncodeOut]:
        state = self.state
        if state is None:
            return []
        match state.status:
            case UnitStatus.PENDING:
                if state.not_before <= time.time() and self.slot.take(state.task.early):
                    return self._start()
            case UnitStatus.ENCODING:
                return self._follow()
            case UnitStatus.PUBLISHING:
                return self._published()
            case UnitStatus.CLEANING:
                return self._cleaning()
        return []

    def _start(self) -> list[EncodeOut]:
        """Start FFmpeg in the slot just taken; a failure to start gives the slot back and is
        a transient failure of the attempt (retried with backoff)."""
        state = self.state
        assert state is not None
        task, plan = state.task, state.task.plan
        state.attempt += 1
        if state.attempt > 1:
            metrics.RETRIES.inc()
        self.publishing.cancel()  # a warm child of an earlier attempt
        try:
            workdir = self._workdir()
            shutil.rmtree(workdir, ignore_errors=True)
            workdir.mkdir(parents=True)
            bucket = self.ctx.settings.storage.bucket
            # the request names the video's own source (validate.py); its bytes are where the
            # video's manifest says (an upload, or an identical file's source)
            key = self.ctx.sources.source_key(plan.video_id, plan.request.source.key)
            source = self.ctx.client.presigned_get_object(bucket, key, expires=timedelta(hours=12))
            profile = self.ctx.profiles[plan.request.profile]  # plan checked it is known
            argv = unit_command(task, profile, source, workdir, self.ctx.settings.transcode.preset)
            nice = self.slot.nice
            self.ffmpeg = FFmpegRun(
                argv, plan.request.probe.duration, workdir / "ffmpeg.log", nice=nice,
                stall_timeout=self.ctx.settings.transcode.stall_timeout,
            )  # fmt: skip
        except Exception as exc:  # a full disk, a missing binary, a failed fork
            self.slot.give()
            log.exception("unit could not start", video=plan.video_id, unit=state.run)
            return self._failed("transient", public_reason("could not start FFmpeg", exc))
        state.status = UnitStatus.ENCODING
        state.phases = {"queued": round(time.time() - state.received, 3)}
        ladder = self.ctx.profiles[plan.request.profile].kind == "ladder"  # conversions: no live
        if ladder and self.live.start(task, self.ctx.settings.storage.bucket, self._workdir()):
            state.published = True  # temporaries of this job may be in the bucket from now on
        self.throttle = ProgressThrottle(1.0)
        log.info(
            "unit started", video=plan.video_id, job=plan.job_id, unit=task.unit_id,
            attempt=state.attempt, process=self.ctx.shape.process_id,
        )  # fmt: skip
        return [
            self._status(
                ev.UnitStarted, unit=task.unit_id, heights=list(task.labels), attempt=state.attempt
            )
        ]

    def _follow(self) -> list[EncodeOut]:
        state, run = self.state, self.ffmpeg
        assert state is not None and run is not None
        out: list[EncodeOut] = list(self.live.news(self._workdir(), state.task, state.phases))
        if any(name != AUDIO_TRACK for name in self.live.announced):  # the job plays
            self.slot.demote(run.child)
        for reading in run.readings():
            metrics.SPEED.set(reading.speed)
            if self.throttle.allow(reading, time.monotonic()):
                out.append(
                    self._status(
                        ev.UnitProgress,
                        unit=state.task.unit_id,
                        percent=round(reading.percent, 2),
                        fps=reading.fps,
                        speed=reading.speed,
                    )
                )
        code = run.exit_code()
        if code is None:
            self.publishing.prepare(self._workdir(), time.monotonic() - run.started,
                                    self._child_deadline())  # fmt: skip
            if not run.stalled():
                return out
            log.warning("encode stalled, killing it", unit=state.run)
            detail = reason = (
                f"FFmpeg made no progress for {run.stalled_for():.0f}s (stalled); killed"
            )
            code = run.kill()
        else:  # FFmpeg's stderr names the source by its presigned URL: never shown as it is
            detail = run.stderr_tail() if code else ""
            reason = public_reason("FFmpeg failed", stderr_reason(detail, f"exit code {code}"))
        run.close()
        self.ffmpeg = None
        self.live.stop()  # the publishing child replaces what it put up
        self.slot.give()
        if code != 0:
            kind = classify_failure(code, detail or f"exit code {code}", run.killed)
            return out + self._failed(kind, reason, detail)
        seconds = time.monotonic() - run.started
        state.phases["encode"] = round(seconds, 3)
        metrics.ENCODE_SECONDS.labels(rung=str(max(state.task.labels))).observe(seconds)
        return out + self._publish()

    def _publish(self) -> list[EncodeOut]:
        state = self.state
        assert state is not None
        plan, workdir = state.task.plan, self._workdir()
        spec = PublishSpec(
            video_id=plan.video_id, job_id=plan.job_id, bucket=self.ctx.settings.storage.bucket,
            workdir=str(workdir), planned=[plan.planned_for(label) for label in state.task.labels],
            audio=unit_audio_kbps(state.task) > 0,
            profile=plan.request.profile,  # a conversion publishes its one file (convert.py)
        )  # fmt: skip
        self.publishing.start(spec, workdir, self._child_deadline())
        state.status = UnitStatus.PUBLISHING
        state.published = True
        return []

    def _published(self) -> list[EncodeOut]:
        state = self.state
        assert state is not None
        outcome = self.publishing.poll()
        if outcome is None:
            return []
        if isinstance(outcome, Failed):  # hung (killed) or failed: both worth a retry
            return self._failed("transient", outcome.reason, outcome.detail)
        result = outcome.result
        task = state.task
        state.phases["publish"] = round(result.seconds, 3)
        state.phases["publish_wall"] = round(time.monotonic() - self.publishing.started_at, 3)
        timings = {name: max(0.0, seconds) for name, seconds in state.phases.items()}
        # in the order of the unit's labels (a conversion's one output has no master entry)
        out: list[EncodeOut] = [
            self._status(ev.RenditionCompleted, stable_id=f"rendition.completed:{label}",
                         rendition=r.rendition, phases=timings)
            for label, r in zip(task.labels, result.rungs, strict=True)
        ]  # fmt: skip
        out.append(unit_outcome(task, result))
        metrics.UNITS.labels(outcome="completed").inc()
        log.info(
            "unit completed", video=task.plan.video_id, job=task.plan.job_id, unit=task.unit_id,
            process=self.ctx.shape.process_id, attempt=state.attempt, phases=state.phases,
        )  # fmt: skip
        self._cleanup()
        self.state = None
        return out

    def _failed(self, kind: str, reason: str, detail: str = "") -> list[EncodeOut]:
        """An attempt failed: ``reason`` is what users see (public, one line), ``detail`` (FFmpeg's
        stderr, a child's output) goes to the log with the video id."""
        state = self.state
        assert state is not None
        settings = self.ctx.settings.transcode
        final = kind == "deterministic" or state.attempt >= settings.retries
        plan = state.task.plan
        log.warning(
            "unit attempt failed", video=plan.video_id, job=plan.job_id, unit=state.run,
            attempt=state.attempt, final=final, kind=kind, reason=reason, detail=detail[-2000:],
        )  # fmt: skip
        error = public_reason(reason)
        self.publishing.cancel()
        out: list[EncodeOut] = [
            self._status(ev.RenditionFailed, height=x, error=error, attempt=state.attempt,
                         final=final)
            for x in state.task.labels
        ]  # fmt: skip
        metrics.UNITS.labels(outcome="failed" if final else "retried").inc()
        if not final:
            state.status = UnitStatus.PENDING
            state.not_before = time.time() + settings.retry_backoff * 2 ** (state.attempt - 1)
            return out
        task = state.task
        rungs = "/".join(f"{x}p" for x in task.labels)
        summary = public_reason(f"rung {rungs} failed after {state.attempt} attempt(s)", error)
        out.append(UnitOutcome(task.plan, task.unit_id, error=summary))
        self._cleanup()
        self.state = None
        return out
