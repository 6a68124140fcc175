"""The one supervisor of child processes (dataflows.children): start, poll without blocking,
deadline, cancel, one public line. Real child processes (tiny Python programs), no mocks."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import msgspec

from core.errors import is_public
from dataflows.children import Child, Failed, Finished, SpecTask
from dataflows.transcode.runner import FFmpegRun

CHILD_MODULE = "tests.unit.children_task"  # a tiny child speaking the spec protocol


class Job(msgspec.Struct, frozen=True):
    """What ``tests.unit.children_task`` does: echo ``text``, sleep, or fail."""

    text: str = ""
    sleep: float = 0.0
    fail: str = ""


class Echo(msgspec.Struct, frozen=True):
    text: str


def wait(task: SpecTask[Echo], timeout: float = 30.0) -> Finished[Echo] | Failed:
    """Poll like a step's timer does, until the task ends."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        outcome = task.poll()
        if outcome is not None:
            return outcome
        time.sleep(0.02)
    raise AssertionError("the child did not end")


def started_up(warm: SpecTask[Echo], timeout: float = 30.0) -> None:
    """Until a warm child's start-up is over: it sleeps in its wait for a spec (the kernel
    names that sleep as its wait channel), seen twice in a row. Imports never sleep so."""
    wchan = Path(f"/proc/{warm.child.process.pid}/wchan")
    deadline = time.monotonic() + timeout
    seen = 0
    while seen < 2:
        assert time.monotonic() < deadline, "the warm child never started waiting for its spec"
        assert warm.child.exit_code() is None, warm.child.output_tail()
        seen = seen + 1 if "nanosleep" in wchan.read_text() else 0
        time.sleep(0.02)


def task(tmp_path: Path, job: Job, deadline: float = 30.0) -> SpecTask[Echo]:
    return SpecTask(
        CHILD_MODULE, job, tmp_path / "work", "job", Echo, what="echo failed", deadline=deadline
    )


def test_a_child_starts_at_once_and_its_result_is_read(tmp_path: Path) -> None:
    started = time.monotonic()
    running = task(tmp_path, Job(text="hello", sleep=0.5))
    assert time.monotonic() - started < 0.4  # starting never waits for the work
    assert running.poll() is None  # polling never waits either
    outcome = wait(running)
    assert outcome == Finished(Echo("hello"))
    assert msgspec.json.decode((tmp_path / "work" / "job.json").read_bytes(), type=Job).text


def test_a_failed_child_gives_one_public_line_and_the_detail_for_the_log(tmp_path: Path) -> None:
    secret = f"http://127.0.0.1:9/x?X-Amz-Signature=abc opening {tmp_path}/local/file"
    outcome = wait(task(tmp_path, Job(fail=secret)))
    assert isinstance(outcome, Failed) and not outcome.hung
    assert outcome.reason.startswith("echo failed: RuntimeError"), outcome.reason
    assert is_public(outcome.reason) and "\n" not in outcome.reason
    assert "X-Amz" not in outcome.reason and str(tmp_path) not in outcome.reason
    assert "Traceback" in outcome.detail and "X-Amz-Signature" in outcome.detail


def test_a_child_that_dies_without_a_word_fails_with_its_exit_code(tmp_path: Path) -> None:
    outcome = wait(task(tmp_path, Job(fail="exit")))
    assert isinstance(outcome, Failed) and outcome.reason == "echo failed: exit code 3"


def test_a_child_past_its_deadline_is_killed_as_hung(tmp_path: Path) -> None:
    running = task(tmp_path, Job(sleep=30), deadline=0.3)
    assert running.poll() is None
    time.sleep(0.5)
    outcome = running.poll()
    assert isinstance(outcome, Failed) and outcome.hung
    assert outcome.reason == "echo failed: did not finish in 0s; killed"
    assert running.child.exit_code() == -9 and running.child.killed


def test_cancel_kills_at_once_and_is_idempotent(tmp_path: Path) -> None:
    running = task(tmp_path, Job(sleep=30))
    started = time.monotonic()
    running.cancel()
    running.cancel()
    assert time.monotonic() - started < 2
    assert running.child.exit_code() == -9


def test_a_stale_result_of_an_earlier_run_is_never_read(tmp_path: Path) -> None:
    assert wait(task(tmp_path, Job(text="first"))) == Finished(Echo("first"))
    outcome = wait(task(tmp_path, Job(fail="exit")))  # same name, same directory
    assert isinstance(outcome, Failed)


def test_a_finished_child_is_never_overdue(tmp_path: Path) -> None:
    child = Child([sys.executable, "-c", "print('ok')"], tmp_path / "log", deadline=0.1)
    child.process.wait(10)
    time.sleep(0.2)
    assert child.exit_code() == 0 and not child.overdue()
    assert child.output_tail() == "ok"
    child.close()


def test_niceness_and_progress_move_the_deadline(tmp_path: Path) -> None:
    script = "import os, time; print(os.nice(0), flush=True); time.sleep(30)"
    child = Child(
        [sys.executable, "-c", script], tmp_path / "log", deadline=0.4, nice=5, pipe_stdout=True
    )
    try:
        assert child.stdout is not None
        line = b""
        until = time.monotonic() + 10
        while not line.endswith(b"\n") and time.monotonic() < until:
            line += child.stdout.read() or b""
            time.sleep(0.02)
        assert int(line) == os.nice(0) + 5  # started at the asked niceness
        time.sleep(0.3)
        child.alive()  # progress: the deadline counts from now
        time.sleep(0.2)
        assert not child.overdue()
        time.sleep(0.3)
        assert child.overdue()
    finally:
        child.cancel()


def test_an_ffmpeg_run_that_stalls_is_overdue(tmp_path: Path) -> None:
    run = FFmpegRun(
        [sys.executable, "-c", "import time; time.sleep(30)"], 10.0, tmp_path / "ff.log",
        stall_timeout=0.2,
    )  # fmt: skip
    try:
        assert run.readings() == [] and not run.stalled()
        time.sleep(0.4)
        assert run.stalled() and run.stalled_for() >= 0.2
    finally:
        assert run.kill() == -9
    assert run.killed


def test_a_child_dies_with_its_parent(tmp_path: Path) -> None:
    """PR_SET_PDEATHSIG: a killed worker process leaves no orphan child behind."""
    pid_file = tmp_path / "grandchild.pid"
    log = tmp_path / "grandchild.log"
    parent = (
        "import sys, time; from pathlib import Path; from dataflows.children import Child; "
        f"c = Child([sys.executable, '-c', 'import time; time.sleep(60)'], Path({str(log)!r})); "
        f"Path({str(pid_file)!r}).write_text(str(c.process.pid)); time.sleep(60)"
    )
    middle = Child([sys.executable, "-c", parent], tmp_path / "parent.log")
    until = time.monotonic() + 20
    while not pid_file.exists() and time.monotonic() < until:
        time.sleep(0.05)
    grandchild = int(pid_file.read_text())
    middle.cancel()
    until = time.monotonic() + 5
    while _alive(grandchild) and time.monotonic() < until:
        time.sleep(0.05)
    assert not _alive(grandchild)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is dead too (its parent, killed, no longer reaps it until init does)
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_a_warm_child_waits_for_its_spec_and_then_works_at_once(tmp_path: Path) -> None:
    """Issue 12: a child started before its work is known (Python up, imports loaded) does it
    without a child's start-up once handed its spec; one that is gone is refused the spec."""
    created = time.monotonic()
    warm: SpecTask[Echo] = SpecTask(
        CHILD_MODULE, None, tmp_path / "work", "job", Echo, what="echo failed", deadline=0.5
    )
    started_up(warm)
    # it waits past its deadline (twice over): the deadline counts from its work
    time.sleep(max(0.0, created + 1.0 - time.monotonic()))
    assert warm.poll() is None and warm.child.exit_code() is None
    handed = time.monotonic()
    assert warm.submit(Job(text="warm"))
    assert wait(warm) == Finished(Echo("warm"))
    assert time.monotonic() - handed < 0.5  # no interpreter start-up, no imports
    assert not warm.submit(Job(text="again"))  # one spec per child
    gone: SpecTask[Echo] = SpecTask(
        CHILD_MODULE, None, tmp_path / "gone", "job", Echo, what="echo failed", deadline=30.0
    )
    gone.cancel()
    assert not gone.submit(Job(text="late"))


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_a_warm_child_waits_for_its_spec_almost_without_cpu(tmp_path: Path) -> None:
    """Issue 12: a warm child waits for its spec the whole encode (tens of seconds) beside
    FFmpeg on a 2-core machine; looking for it 100 times a second cost 0.011 CPU-s a second
    (0.5 s of CPU taken from FFmpeg per warm child of a one-minute encode)."""
    warm: SpecTask[Echo] = SpecTask(
        CHILD_MODULE, None, tmp_path / "work", "job", Echo, what="echo failed", deadline=30.0
    )
    try:
        started_up(warm)
        before = _cpu_seconds(warm.child.process.pid)
        time.sleep(4.0)
        waited = _cpu_seconds(warm.child.process.pid) - before
        assert warm.child.exit_code() is None
        assert waited <= 0.02, f"{waited:.3f} CPU-s in 4 s of waiting"
        handed = time.monotonic()
        assert warm.submit(Job(text="warm"))
        assert wait(warm) == Finished(Echo("warm"))
        assert time.monotonic() - handed < 0.5  # still without a child's start-up
    finally:
        warm.cancel()
