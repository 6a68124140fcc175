"""`vidflow up` under supervisord on the real services: every app process SIGKILLed during a
job is running again within 10 s with no operator action, the clip completes once, `vidflow
status` counts the restarts, and `vidflow down` leaves no process behind."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from core import events as ev
from core.settings import Settings, settings_environ
from tests.flows import ROOT, TopicReader
from tests.media import h264_clip
from vidflow.supervise import ProgramState, SupervisorPaths, program_states

pytestmark = pytest.mark.integration

APP_PROCESSES = ["ingest", "transcode", "projector", "portal", "watcher", "webhooks"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _vidflow(
    env: dict[str, str], *args: str, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vidflow", *args],
        capture_output=True, text=True, cwd=ROOT, timeout=timeout, check=False, env=env,
    )  # fmt: skip


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is gone for our purposes
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


def _states(paths: SupervisorPaths) -> dict[str, ProgramState]:
    return {s.name: s for s in program_states(paths)}


@pytest.fixture
def supervised(
    isolated_settings: Settings, tmp_path: Path
) -> Iterator[tuple[dict[str, str], SupervisorPaths]]:
    """`vidflow up` with its own VIDFLOW_HOME, topics, bucket and ports; `vidflow down` after."""
    home = tmp_path / "home"
    ports = {
        "VIDFLOW_PORTAL_PORT": _free_port(),
        "VIDFLOW_METRICS_INGEST_PORT": _free_port(),
        "VIDFLOW_METRICS_TRANSCODE_PORT": _free_port(),
        "VIDFLOW_METRICS_WATCHER_PORT": _free_port(),
        "VIDFLOW_METRICS_PROJECTOR_PORT": _free_port(),
    }
    env = {
        **os.environ,
        **settings_environ(isolated_settings),
        **{k: str(v) for k, v in ports.items()},
        "VIDFLOW_HOME": str(home),
    }
    paths = SupervisorPaths(home)
    try:
        up = _vidflow(env, "up", "--external-services")  # the shared stack is not this home's
        assert up.returncode == 0, up.stdout + up.stderr
        yield env, paths
    finally:
        _vidflow(env, "down", "--keep-services")


def test_every_killed_app_process_comes_back_and_the_clip_completes_once(
    supervised: tuple[dict[str, str], SupervisorPaths], isolated_settings: Settings, tmp_path: Path
) -> None:
    env, paths = supervised
    before = _states(paths)
    assert sorted(before) == sorted(APP_PROCESSES)
    assert all(s.state == "RUNNING" and s.restarts == 0 for s in before.values()), before

    clip = h264_clip(tmp_path / "clip.mp4", seconds=4)
    submitted = _vidflow(env, "submit", str(clip), "--json")
    assert submitted.returncode == 0, submitted.stderr
    video_id = json.loads(submitted.stdout)["video_id"]

    reader = TopicReader(isolated_settings, isolated_settings.kafka.topic_status)

    def of_video(kind: type[ev.StatusBase]) -> list[ev.AnyEvent]:
        return [e for e in reader.events if isinstance(e, kind) and e.video_id == video_id]

    for name in APP_PROCESSES:  # each in turn, while the job is in flight
        if name == "transcode":  # in the middle of an encode
            reader.wait_for(lambda _: bool(of_video(ev.UnitStarted)), 90)
            assert not of_video(ev.JobCompleted), "the job ended before transcode was killed"
        old_pid = _states(paths)[name].pid
        os.kill(old_pid, signal.SIGKILL)
        killed_at = time.monotonic()
        while True:
            state = _states(paths)[name]
            if state.state == "RUNNING" and state.pid not in {0, old_pid}:
                break
            assert time.monotonic() - killed_at < 10, f"{name} not back 10 s after SIGKILL: {state}"
            time.sleep(0.2)
        assert not _alive(old_pid)

    deadline = time.monotonic() + 180
    status = ""
    with psycopg.connect(isolated_settings.postgres.dsn) as conn:
        while time.monotonic() < deadline:
            row = conn.execute("select status from videos where id = %s", (video_id,)).fetchone()
            conn.commit()
            status = row[0] if row else ""
            if status in {"completed", "failed"}:
                break
            time.sleep(1)
    assert status == "completed"
    events = reader.wait_for(lambda _: bool(of_video(ev.JobCompleted)), 30)
    reader.poll(3)  # a duplicate would be right behind
    reader.close()
    assert len(of_video(ev.JobCompleted)) == 1, [e.type for e in events]

    shown = _vidflow(env, "status", timeout=60)
    after = _states(paths)
    assert all(after[n].state == "RUNNING" and after[n].restarts >= 1 for n in APP_PROCESSES), after
    for name in APP_PROCESSES:
        line = next(
            row for row in shown.stdout.splitlines() if f" {name} " in row and "process" in row
        )
        assert "RUNNING" in line and str(after[name].pid) in line, shown.stdout
        assert int(line.split("│")[6].strip()) >= 1, line

    logged = _vidflow(env, "logs", "supervisord", "-n", "200", timeout=30)
    assert logged.returncode == 0 and "spawned: 'ingest'" in logged.stdout, logged.stderr
    refused = _vidflow(env, "logs", "../secrets", timeout=30)
    assert refused.returncode != 0 and str(paths.home) not in refused.stderr

    supervisord_pid = int(paths.pidfile.read_text())
    down = _vidflow(env, "down", "--keep-services", timeout=120)
    assert down.returncode == 0, down.stderr
    assert not _alive(supervisord_pid)
    # each stopped on its own signal in time: supervisord had to SIGKILL none ("killing … with")
    assert " with SIGKILL" not in paths.log.read_text()
    assert not any(_alive(s.pid) for s in after.values())
    leftovers = [
        p for p in Path("/proc").iterdir()
        if p.name.isdigit() and _alive(int(p.name))
        and str(paths.home).encode() in _cmdline(p)
    ]  # fmt: skip
    assert leftovers == []


def _cmdline(proc: Path) -> bytes:
    try:
        return (proc / "cmdline").read_bytes()
    except OSError:
        return b""
