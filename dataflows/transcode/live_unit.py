"""The ``encode`` step's side of live publishing: the child that puts fragments up while FFmpeg
runs (:mod:`dataflows.transcode.live`), and the news of it for ``collect``.

Live publishing is a bonus: a child that cannot start or fails costs the early playback (and
is logged), never the unit, which is published whole when FFmpeg is done.
"""

from __future__ import annotations

import time
from pathlib import Path

from core.logs import get_logger
from dataflows.children import SpecTask
from dataflows.transcode.commands import AUDIO_TRACK, track_name
from dataflows.transcode.hls import MasterEntry
from dataflows.transcode.live import read_live
from dataflows.transcode.messages import JobPlan, UnitLive, UnitTask
from dataflows.transcode.tasks import LiveResult, LiveSpec, start

__all__ = ["LiveFollower", "live_entry", "unit_audio_kbps", "unit_tracks"]

log = get_logger("vidflow.transcode")

CANCEL_FILE = "live.cancel"  # the unit is cancelled: remove what the job put up, then end
CLEAN_UP_SECONDS = 30.0  # past this the child is killed and a clean-up child does it


def unit_audio_kbps(task: UnitTask) -> int:
    """The audio bit rate when ``task`` makes the job's one audio track (the unit of the lowest
    rung, the first playable), else 0."""
    lowest = min(task.plan.planned, key=lambda p: p.label)
    return lowest.audio_kbps if lowest.audio and lowest.label in task.labels else 0


def unit_tracks(task: UnitTask) -> list[str]:
    """The tracks a unit writes (``240p``…, and ``audio`` when it makes the audio)."""
    names = [track_name(label) for label in task.labels]
    return names + ([AUDIO_TRACK] if unit_audio_kbps(task) else [])


def live_entry(plan: JobPlan, name: str, codec: str, audio_kbps: int) -> MasterEntry:
    """A track still encoding as the master lists it: its bandwidth is the planned peak (the
    measured one comes with the finished track)."""
    if name == AUDIO_TRACK:
        return MasterEntry(0, 0, 0, audio_kbps * 1000, codec, f"{name}.m3u8", kind="audio",
                           media=f"{name}.mp4", live=True)  # fmt: skip
    p = plan.planned_for(int(name.removesuffix("p")))
    bandwidth = p.video_kbps * 107 // 100 * 1000  # the encoder's -maxrate
    return MasterEntry(p.label, p.width, p.height, bandwidth, codec, f"{name}.m3u8",
                       media=f"{name}.mp4", live=True)  # fmt: skip


class LiveFollower:
    """One unit's live-publishing child, polled from the step's timer."""

    def __init__(self) -> None:
        self.task: SpecTask[LiveResult] | None = None
        self.announced: set[str] = set()
        self.first_at = 0.0  # seconds from start() to the first track up (0: none yet)
        self._began = self._cleaning_since = time.monotonic()

    def start(self, task: UnitTask, bucket: str, workdir: Path) -> bool:
        """Start the child (killed with the unit; it has no deadline of its own, FFmpeg's stall
        timeout bounds the encode); whether it started (temporaries may be in the bucket)."""
        self.stop()
        plan, unit = task.plan, f"{task.plan.job_id}:{task.unit_id}"
        spec = LiveSpec(
            video_id=plan.video_id, job_id=plan.job_id, bucket=bucket, workdir=str(workdir),
            names=unit_tracks(task),
        )  # fmt: skip
        self.announced, self.first_at, self._began = set(), 0.0, time.monotonic()
        try:
            self.task = start(spec, workdir, "live", LiveResult, float("inf"))
        except Exception:
            log.exception("live publishing could not start", unit=unit)
            return False
        return True

    def awaited(self) -> bool:
        """The child runs and no track of it is up yet: the job's first playable moment."""
        return self.task is not None and not self.first_at

    def news(self, workdir: Path, task: UnitTask, phases: dict[str, float]) -> list[UnitLive]:
        """Tracks whose first fragments are up since the last call (read from a local file),
        for ``collect``; the first one's time goes to ``phases["first_segment"]``."""
        plan, unit_id, audio_kbps = task.plan, task.unit_id, unit_audio_kbps(task)
        if self.task is None:
            return []
        if self.task.child.exit_code() not in (None, 0):
            log.warning("live publishing failed", video=plan.video_id, unit=unit_id,
                        output=self.task.child.output_tail())  # fmt: skip
            self.stop()
            return []
        news = {n: v for n, v in read_live(workdir).items() if n not in self.announced}
        if not news:
            return []
        self.announced |= set(news)
        if not self.first_at:
            self.first_at = phases["first_segment"] = round(time.monotonic() - self._began, 3)
        entries = {}
        for name, facts in news.items():
            entry = live_entry(plan, name, str(facts.get("codec", "")), audio_kbps)
            entries[entry.label] = entry
        return [UnitLive(plan, unit_id, entries)]

    def clean_up(self, workdir: Path) -> bool | None:
        """Ask the running child to remove what its job put up and end (it has its client
        ready, where a clean-up child would first start Python): None while it works, then
        whether it did; False at once when no child runs (a clean-up child must do it)."""
        if self.task is None:
            return False
        cancel = workdir / CANCEL_FILE
        if not cancel.exists():
            cancel.touch()
            self._cleaning_since = time.monotonic()
        code = self.task.child.exit_code()
        if code is None and time.monotonic() - self._cleaning_since < CLEAN_UP_SECONDS:
            return None
        self.stop()
        return code == 0

    def stop(self) -> None:
        """Kill the child (idempotent): FFmpeg is done, or the unit stops."""
        if self.task is not None:
            self.task.cancel()
            self.task = None
