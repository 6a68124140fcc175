"""The transcode flow's stateful steps driven by hand (real objects, no services touched):
an encode that cannot start gives its slot back, an early unit gives its own up once the job
plays, and finished videos leave no state."""

from __future__ import annotations

import os
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import msgspec
from bytewax.operators import StatefulLogic

from connectors.storage import make_client
from core import events as ev
from core.profiles import load_profiles
from core.settings import Settings
from dataflows.children import Child
from dataflows.kafka_io import Inbound, Outbound
from dataflows.transcode.cluster import ClusterShape
from dataflows.transcode.collect import CollectLogic
from dataflows.transcode.context import TranscodeContext
from dataflows.transcode.encode import EncodeLogic
from dataflows.transcode.messages import JobClosed, JobOpened, UnitCancel, UnitStopped, UnitTask
from dataflows.transcode.plan import PlanLogic
from dataflows.transcode.runner import NEAR_END_SECONDS, FFmpegRun
from dataflows.transcode.slots import UnitSlot
from dataflows.transcode.state import EncodeState, UnitStatus

PROFILES = '{"test": [{"height": 240, "video_kbps": 500}, {"height": 144, "video_kbps": 200}]}'


def context(home: Path, **transcode: object) -> TranscodeContext:
    base = Settings()
    settings = msgspec.structs.replace(
        base,
        home=home,
        transcode=msgspec.structs.replace(base.transcode, profiles_json=PROFILES, **transcode),
    )
    return TranscodeContext(
        settings, make_client(settings.storage), load_profiles(PROFILES), ClusterShape(), "ladder"
    )


def request(video: str = "v1", job: str = "j1") -> Inbound:
    event = ev.TranscodeRequested(
        id=f"{video}-{job}", video_id=video, job_id=job, profile="test",
        source=ev.SourceRef(bucket="vidflow", key=f"sources/{video}/source", size=1,
                            sha256="0" * 64),
        probe=ev.Probe(duration=2.0, width=480, height=270, fps=25.0, has_audio=True),
    )  # fmt: skip
    return Inbound(event, "vidflow.jobs", 0, 7)


def test_an_encode_that_cannot_start_gives_its_slot_back(tmp_path: Path) -> None:
    blocker = tmp_path / "home"
    blocker.write_text("a file where the work directory should be")  # mkdir fails
    ctx = context(blocker, retries=2, retry_backoff=0.0)
    planned, _ = PlanLogic(ctx, None).on_item(request())
    task = next(item for item in planned if isinstance(item, UnitTask))
    logic = EncodeLogic(ctx, None)
    out, retain = logic.on_item(task)
    failed = [o.event for o in out if isinstance(o, Outbound)]
    assert failed and all(isinstance(e, ev.RenditionFailed) and not e.final for e in failed)
    assert "could not start FFmpeg" in failed[0].error  # type: ignore[union-attr]
    assert retain == StatefulLogic.RETAIN
    assert ctx._slots[(threading.get_ident(), False)] == 0  # the slot is free again
    assert ctx.take_slot()  # and can be taken
    ctx.give_slot()
    out, retain = logic.on_notify()  # the retry fails the same way: out of retries
    events = [o.event for o in out if isinstance(o, Outbound)]
    assert events and all(isinstance(e, ev.RenditionFailed) and e.final for e in events)
    assert any(not isinstance(o, Outbound) and o.error for o in out)  # the unit's outcome
    assert retain == StatefulLogic.DISCARD
    assert ctx._slots[(threading.get_ident(), False)] == 0


def test_the_first_playable_unit_has_slots_of_its_own(tmp_path: Path) -> None:
    ctx = context(tmp_path)
    assert ctx.take_slot()  # the bulk slot (max_encodes_per_worker = 1) ...
    assert not ctx.take_slot()  # ... is taken
    assert ctx.take_slot(early=True)  # a new video's lowest rung still starts
    assert not ctx.take_slot(early=True)
    ctx.give_slot(early=True)
    ctx.give_slot()
    assert ctx.take_slot() and ctx.take_slot(early=True)


def test_a_cancel_for_a_unit_with_no_state_is_acknowledged(tmp_path: Path) -> None:
    logic = EncodeLogic(context(tmp_path), None)
    out, retain = logic.on_item(UnitCancel("j1", "v1/j1/ladder", "v1", "ladder"))
    assert out == [UnitStopped("v1", "j1", "ladder")] and retain == StatefulLogic.DISCARD


def test_plan_drops_duplicates_until_the_ttl_then_discards(tmp_path: Path) -> None:
    ctx = context(tmp_path, state_ttl=0.3)
    logic = PlanLogic(ctx, None)
    out, retain = logic.on_item(request())
    assert any(isinstance(o, JobOpened) for o in out) and retain == StatefulLogic.RETAIN
    assert logic.notify_at() is not None
    out, retain = logic.on_item(request())
    assert out == [] and retain == StatefulLogic.RETAIN  # a duplicate within the TTL
    time.sleep(0.35)
    out, retain = logic.on_notify()
    assert out == [] and retain == StatefulLogic.DISCARD


def test_collect_keeps_a_tombstone_then_discards_it(tmp_path: Path) -> None:
    ctx = context(tmp_path, state_ttl=0.3)
    planned, _ = PlanLogic(ctx, None).on_item(request())
    opened = next(item for item in planned if isinstance(item, JobOpened))
    logic = CollectLogic(ctx, None)
    assert logic.on_item(opened) == ([], StatefulLogic.RETAIN)
    out, retain = logic.on_item(JobClosed("v1", "j1", "cancelled on request"))
    assert out == [] and retain == StatefulLogic.RETAIN  # waits for the unit to be stopped
    out, retain = logic.on_item(UnitStopped("v1", "j1", opened.plan.units[0]))
    assert [type(o.event) for o in out] == [ev.JobCancelled]
    assert retain == StatefulLogic.RETAIN  # the tombstone
    assert logic.snapshot().closed == ["j1"] and logic.snapshot().plan is None
    late, _ = logic.on_item(opened)  # a late message of the ended job is not adopted again
    assert late == [] and logic.state.plan is None
    time.sleep(0.35)
    out, retain = logic.on_notify()
    assert out == [] and retain == StatefulLogic.DISCARD


def test_an_early_unit_gives_its_slot_and_priority_up_once_the_job_plays(tmp_path: Path) -> None:
    """Issue 12: the one ladder unit of a job runs in an early slot until its first video
    fragment is live, then in a bulk slot, so the next video's early unit starts at once; it
    gives its priority up (the bulk niceness) when another unit starts an encode, not before:
    alone on the machine a niced encode only lost the CPU to whatever else ran. With no early
    slot free an early unit starts bulk."""
    ctx = context(tmp_path, bulk_nice=7)
    first, second, third = UnitSlot(ctx), UnitSlot(ctx), UnitSlot(ctx)
    assert first.take(early=True) and first.held is True and first.nice == 0
    sleeper = Child(["sleep", "30"], tmp_path / "sleep.log")
    try:
        first.demote(sleeper)
        assert first.held is False and first.nice == 7
        assert os.getpriority(os.PRIO_PROCESS, sleeper.process.pid) == 0  # nobody waits
        assert second.take(early=True) and second.held is True  # the early slot is free again
        assert os.getpriority(os.PRIO_PROCESS, sleeper.process.pid) == 7  # it gives way now
    finally:
        sleeper.cancel()
    assert not third.take(early=True)  # both kinds taken
    first.give()
    assert third.take(early=True) and third.held is False and third.nice == 7  # bulk slot
    for slot in (second, third):
        slot.give()
    assert ctx.take_slot() and ctx.take_slot(early=True)  # every slot given back


def _encoding(tmp_path: Path, out_seconds: float, duration: float) -> EncodeLogic:
    """An encode step in the middle of an encode whose FFmpeg (a stand-in printing FFmpeg's
    progress block) has reported ``out_seconds`` of ``duration``."""
    ctx = context(tmp_path)
    planned, _ = PlanLogic(ctx, None).on_item(request())
    logic = EncodeLogic(ctx, None)
    logic.state = EncodeState(next(item for item in planned if isinstance(item, UnitTask)))
    logic.state.status = UnitStatus.ENCODING
    block = f"out_time_us={int(out_seconds * 1e6)}\\nprogress=continue\\n"
    logic.ffmpeg = FFmpegRun(["sh", "-c", f"printf '{block}'; sleep 30"], duration,
                             tmp_path / f"ffmpeg-{out_seconds}.log")  # fmt: skip
    deadline = time.monotonic() + 10
    while not logic.ffmpeg.readings():
        assert time.monotonic() < deadline, "the stand-in printed no progress"
        time.sleep(0.01)
    return logic


def test_the_end_of_an_encode_is_looked_for_urgently(tmp_path: Path) -> None:
    """Issue 12: FFmpeg's exit starts the publishing on the way to job.completed; polled every
    ``poll_interval`` (0.5 s) it was found 0.25 s late on average. Once at most
    ``NEAR_END_SECONDS`` of the source are left the step looks every ``urgent_poll_interval``."""
    middle, end = _encoding(tmp_path, 10.0, 60.0), _encoding(tmp_path, 58.5, 60.0)
    try:
        now = datetime.now(UTC)
        middle_at, end_at = middle.notify_at(), end.notify_at()
        assert middle_at is not None and end_at is not None
        assert (middle_at - now).total_seconds() >= 0.45  # FFmpeg's progress can wait
        assert (end_at - now).total_seconds() <= 0.15
        assert NEAR_END_SECONDS >= 60.0 - 58.5
    finally:
        for logic in (middle, end):
            assert logic.ffmpeg is not None
            logic.ffmpeg.kill()
