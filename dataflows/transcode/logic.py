"""The transcode flow's per-video stateful logic.

It never blocks a worker on an encode: FFmpeg runs as a child process that this logic starts,
then polls on Bytewax timers (``notify_at``) for progress and exit, so other videos, other
workers' input and recovery snapshots go on while minutes of encoding happen.
"""

from __future__ import annotations

import copy
import shutil
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from bytewax.operators import StatefulLogic
from minio import Minio

from connectors.ffmpeg import ffmpeg_binary
from dataflows.kafka_io import Inbound, Outbound
from dataflows.transcode import metrics
from dataflows.transcode.commands import encode_command
from dataflows.transcode.ladder import plan_ladder
from dataflows.transcode.outputs import RenditionStore
from dataflows.transcode.profiles import Rung
from dataflows.transcode.progress import ProgressThrottle
from dataflows.transcode.runner import FFmpegRun, classify_failure
from dataflows.transcode.state import JobState, UnitState, group_units
from vidflow import events as ev
from vidflow.layout import ObjectLayout
from vidflow.logs import get_logger
from vidflow.settings import Settings

__all__ = ["TranscodeContext", "TranscodeLogic"]

log = get_logger("vidflow.transcode")
S = TypeVar("S", bound=ev.StatusBase)


class TranscodeContext:
    """What every video's logic on a process shares."""

    def __init__(
        self, settings: Settings, client: Minio, profiles: dict[str, tuple[Rung, ...]]
    ) -> None:
        self.settings = settings
        self.client = client
        self.profiles = profiles
        self.layout = ObjectLayout(settings.storage)
        self.workroot = Path(settings.home).resolve() / "work" / "transcode"
        self._slots: dict[int, int] = {}
        self._lock = threading.Lock()

    def take_slot(self) -> bool:
        """One of this worker's encode slots, if free (a worker is a thread)."""
        with self._lock:
            worker = threading.get_ident()
            if self._slots.get(worker, 0) >= self.settings.transcode.max_encodes_per_worker:
                return False
            self._slots[worker] = self._slots.get(worker, 0) + 1
            metrics.RUNNING.inc()
            return True

    def give_slot(self) -> None:
        with self._lock:
            worker = threading.get_ident()
            self._slots[worker] = max(0, self._slots.get(worker, 0) - 1)
            metrics.RUNNING.dec()


class TranscodeLogic(StatefulLogic[Inbound, Outbound, JobState]):
    """Plan, run, retry, publish and finish one video's job."""

    def __init__(self, ctx: TranscodeContext, resumed: JobState | None) -> None:
        self.ctx = ctx
        self.job = resumed
        self.runs: dict[str, FFmpegRun] = {}
        self.throttles: dict[str, ProgressThrottle] = {}
        if resumed is not None:  # children died with the old worker: run those units again
            for unit in resumed.units:
                if unit.status == "running":
                    unit.status = "pending"

    # ---------------------------------------------------------------- bytewax callbacks

    def on_item(self, value: Inbound) -> tuple[list[Outbound], bool]:
        return self._guarded(lambda: self._on_item(value))

    def on_notify(self) -> tuple[list[Outbound], bool]:
        return self._guarded(self._tick)

    def _guarded(self, step: Callable[[], list[Outbound]]) -> tuple[list[Outbound], bool]:
        """A bug or an outage while handling one video fails that job, never the flow."""
        try:
            out = step()
        except Exception as exc:
            log.exception(
                "transcode step failed", video=self.job.request.video_id if self.job else ""
            )
            out = self._fail_job(f"internal error: {type(exc).__name__}: {exc}") if self.job else []
        return out, self._retain()

    def _on_item(self, value: Inbound) -> list[Outbound]:
        event = value.event
        out: list[Outbound] = []
        if isinstance(event, ev.TranscodeRequested):
            if self.job is not None and self.job.request.job_id == event.job_id:
                return out  # a replayed duplicate of the running job
            if self.job is not None:
                out += self._cancel("superseded by a newer job")
            out += self._start_job(event, (value.topic, value.partition, value.offset))
        elif isinstance(event, ev.TranscodeCancel) and self._is_current(event.job_id):
            out += self._cancel("cancelled on request")
        out += self._tick()
        return out

    def on_eof(self) -> tuple[list[Outbound], bool]:
        return [], self._retain()

    def notify_at(self) -> datetime | None:
        if self.job is None:
            return None
        return datetime.now(UTC) + timedelta(seconds=self.ctx.settings.transcode.poll_interval)

    def snapshot(self) -> JobState:
        assert self.job is not None
        return copy.deepcopy(self.job)

    # ---------------------------------------------------------------- helpers

    def _is_current(self, job_id: str | None) -> bool:
        """Whether a cancel naming ``job_id`` (None: any) applies to the running job."""
        return self.job is not None and job_id in (None, self.job.request.job_id)

    def _active(self) -> bool:
        return self.job is not None

    def _retain(self) -> bool:
        return StatefulLogic.RETAIN if self.job is not None else StatefulLogic.DISCARD

    def _status(self, cls: type[S], *, stable_id: str = "", **fields: Any) -> Outbound:
        job = self.job
        assert job is not None
        seq = job.next_seq()
        run = job.request.job_id
        tag = str(cls.__struct_config__.tag)
        # milestones get ids from what they say, so a replay after a crash repeats the same id
        event_id = ev.event_id(run, stable_id) if stable_id else ev.event_id(run, seq, tag)
        event = cls(id=event_id, video_id=job.request.video_id, run=run, seq=seq, **fields)
        return Outbound(self.ctx.settings.kafka.topic_status, event)

    def _workdir(self, unit: UnitState) -> Path:
        job = self.job
        assert job is not None
        return self.ctx.workroot / job.request.video_id / job.request.job_id / unit.unit_id

    def _store(self) -> RenditionStore:
        assert self.job is not None
        source = self.job.request.source
        return RenditionStore(
            self.ctx.client, source.bucket, self.ctx.layout, self.job.request.video_id
        )

    # ---------------------------------------------------------------- job lifecycle

    def _start_job(
        self, request: ev.TranscodeRequested, position: tuple[str, int, int]
    ) -> list[Outbound]:
        profile = self.ctx.profiles.get(request.profile)
        planned = plan_ladder(request.probe, profile) if profile else []
        mode = self.ctx.settings.transcode.unit_mode
        self.job = JobState(
            request, position, planned, group_units(planned, "ladder" if mode == "auto" else mode)
        )
        log.info(
            "job started",
            video=request.video_id,
            job=request.job_id,
            rungs=[p.label for p in planned],
        )
        if profile is None:
            return self._fail_job(
                f"unknown profile {request.profile!r} (known: {', '.join(self.ctx.profiles)})"
            )
        return []

    def _tick(self) -> list[Outbound]:
        if self.job is None:
            return []
        out: list[Outbound] = []
        for unit in self.job.units:
            if unit.status == "running":
                out += self._follow(unit)
                if not self._active():  # the unit's failure ended the job
                    return out
        for unit in self.job.units:
            if unit.status == "pending" and unit.not_before <= time.time() and self.ctx.take_slot():
                out += self._start_unit(unit)
        if self.job.units and all(u.status == "done" for u in self.job.units):
            out += self._complete_job()
        return out

    def _start_unit(self, unit: UnitState) -> list[Outbound]:
        job = self.job
        assert job is not None
        workdir = self._workdir(unit)
        shutil.rmtree(workdir, ignore_errors=True)
        workdir.mkdir(parents=True)
        source = self.ctx.client.presigned_get_object(
            job.request.source.bucket, job.request.source.key, expires=timedelta(hours=12)
        )
        renditions = [job.planned_for(label) for label in unit.labels]
        argv = encode_command(
            ffmpeg_binary(),
            source,
            job.request.probe,
            renditions,
            workdir,
            self.ctx.settings.transcode.preset,
        )
        unit.attempt += 1
        unit.status = "running"
        if unit.attempt > 1:
            metrics.RETRIES.inc()
        self.runs[unit.unit_id] = FFmpegRun(
            argv, job.request.probe.duration, workdir / "ffmpeg.log"
        )
        self.throttles[unit.unit_id] = ProgressThrottle(1.0)
        return [
            self._status(
                ev.UnitStarted,
                job_id=job.request.job_id,
                unit=unit.unit_id,
                heights=unit.labels,
                attempt=unit.attempt,
            )
        ]

    def _follow(self, unit: UnitState) -> list[Outbound]:
        job = self.job
        assert job is not None
        run = self.runs[unit.unit_id]
        out: list[Outbound] = []
        for reading in run.readings():
            metrics.SPEED.set(reading.speed)
            if self.throttles[unit.unit_id].allow(reading, time.monotonic()):
                out.append(
                    self._status(
                        ev.UnitProgress,
                        job_id=job.request.job_id,
                        unit=unit.unit_id,
                        percent=round(reading.percent, 2),
                        fps=reading.fps,
                        speed=reading.speed,
                    )
                )
        code = run.exit_code()
        detail = run.stderr_tail() if code else ""
        if code is None:
            if run.stalled_for() <= self.ctx.settings.transcode.stall_timeout:
                return out
            log.warning("encode stalled, killing it", video=job.request.video_id, unit=unit.unit_id)
            detail = f"FFmpeg made no progress for {run.stalled_for():.0f}s (stalled); killed"
            code = run.kill()
        run.close()
        del self.runs[unit.unit_id]
        self.ctx.give_slot()
        seconds = time.monotonic() - run.started
        if code == 0:
            metrics.ENCODE_SECONDS.labels(rung=str(max(unit.labels))).observe(seconds)
            return out + self._publish(unit)
        detail = detail or f"exit code {code}"
        return out + self._unit_failed(unit, classify_failure(code, detail, run.killed), detail)

    def _publish(self, unit: UnitState) -> list[Outbound]:
        job = self.job
        assert job is not None
        store, out = self._store(), []
        for label in unit.labels:
            rendition, entry = store.publish(job.planned_for(label), self._workdir(unit))
            job.renditions[label], job.entries[label] = rendition, entry
            out.append(
                self._status(
                    ev.RenditionCompleted,
                    stable_id=f"rendition.completed:{label}",
                    job_id=job.request.job_id,
                    rendition=rendition,
                )
            )
            store.write_master(list(job.entries.values()))  # playable before the ladder is done
        unit.status = "done"
        metrics.UNITS.labels(outcome="completed").inc()
        return out

    def _unit_failed(self, unit: UnitState, kind: str, error: str) -> list[Outbound]:
        job = self.job
        assert job is not None
        settings = self.ctx.settings.transcode
        final = kind == "deterministic" or unit.attempt >= settings.retries
        unit.error = error
        out = [
            self._status(
                ev.RenditionFailed,
                job_id=job.request.job_id,
                height=label,
                error=error[-1000:],
                attempt=unit.attempt,
                final=final,
            )
            for label in unit.labels
        ]
        metrics.UNITS.labels(outcome="failed" if final else "retried").inc()
        if final:
            unit.status = "failed"
            rungs = "/".join(f"{x}p" for x in unit.labels)
            reason = f"rung {rungs} failed after {unit.attempt} attempt(s)"
            last_line = error.strip().splitlines()[-1] if error.strip() else ""
            return out + self._fail_job(f"{reason}: {last_line}" if last_line else reason)
        unit.status = "pending"
        unit.not_before = time.time() + settings.retry_backoff * 2 ** (unit.attempt - 1)
        return out

    def _stop_runs(self) -> None:
        for run in self.runs.values():
            run.kill()
            self.ctx.give_slot()
        self.runs.clear()

    def _cleanup(self) -> None:
        job = self.job
        assert job is not None
        shutil.rmtree(
            self.ctx.workroot / job.request.video_id / job.request.job_id, ignore_errors=True
        )

    def _fail_job(self, reason: str) -> list[Outbound]:
        job = self.job
        assert job is not None
        self._stop_runs()
        topic, partition, offset = job.position
        letter = ev.dead_letter(
            raw=ev.encode(job.request),
            key=job.request.video_id,
            topic=topic,
            partition=partition,
            offset=offset,
            error=reason,
            stage="transcode",
        )
        out = [
            self._status(
                ev.JobFailed,
                stable_id="job.failed",
                reason=reason,
                job_id=job.request.job_id,
                stage="transcode",
            ),
            Outbound(self.ctx.settings.kafka.topic_dlq, letter),
        ]
        metrics.JOBS.labels(status="failed").inc()
        log.warning("job failed", video=job.request.video_id, reason=reason)
        self._cleanup()
        self.job = None
        return out

    def _cancel(self, reason: str) -> list[Outbound]:
        job = self.job
        assert job is not None
        self._stop_runs()
        unfinished = [p.label for p in job.planned if p.label not in job.renditions]
        self._store().remove_unfinished(unfinished)
        out = [self._status(ev.JobCancelled, stable_id="job.cancelled", job_id=job.request.job_id)]
        metrics.JOBS.labels(status="cancelled").inc()
        log.info("job cancelled", video=job.request.video_id, reason=reason)
        self._cleanup()
        self.job = None
        return out

    def _complete_job(self) -> list[Outbound]:
        job = self.job
        assert job is not None
        store = self._store()
        top = max(job.renditions)
        planned = job.planned_for(top)
        workdir = self.ctx.workroot / job.request.video_id / job.request.job_id
        local = workdir / f"preview-{top}p.mp4"
        self.ctx.client.fget_object(job.request.source.bucket, job.renditions[top].key, str(local))
        previews = store.previews(
            local, job.request.probe.duration, planned.width, planned.height, workdir
        )
        master = store.write_master(list(job.entries.values()))
        renditions = sorted(job.renditions.values(), key=lambda r: -r.height)
        out = [
            self._status(
                ev.JobCompleted,
                stable_id="job.completed",
                job_id=job.request.job_id,
                renditions=renditions,
                master=master,
                poster=previews.poster,
                sprite=previews.sprite,
                sprite_vtt=previews.vtt,
            )
        ]
        metrics.JOBS.labels(status="completed").inc()
        log.info("job completed", video=job.request.video_id, rungs=sorted(job.renditions))
        self._cleanup()
        self.job = None
        return out
