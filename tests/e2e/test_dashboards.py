"""Every Grafana panel's query returns data from a real Prometheus scraping the running pipeline.

Grafana itself is not needed to prove a dashboard: its panels are PromQL, so the test runs the
flows and the watcher on their configured metrics ports, sends a file through them to a finished
job, lets the stack's Prometheus scrape, and runs each panel's query against it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from core import events as ev
from core.settings import MiB, Settings, settings_environ
from tests.flows import ROOT, FlowProcess, TopicReader
from tests.media import raw_clip
from vidflow.stack.process import port_in_use

pytestmark = pytest.mark.e2e

DASHBOARDS = sorted((ROOT / "deploy" / "grafana" / "dashboards").glob("*.json"))


def panel_queries() -> list[tuple[str, str, str]]:
    """(dashboard, panel title, expr) for every target of every panel."""
    found = []
    for path in DASHBOARDS:
        board = json.loads(path.read_text())
        for panel in board["panels"]:
            for target in panel["targets"]:
                found.append((board["title"], panel["title"], target["expr"]))
    return found


def query(settings: Settings, expr: str) -> dict[str, Any]:
    url = (
        f"http://127.0.0.1:{settings.metrics.prometheus_port}/api/v1/query?"
        + urllib.parse.urlencode({"query": expr})
    )
    with urllib.request.urlopen(url, timeout=5) as response:
        body: dict[str, Any] = json.load(response)
    return body


@pytest.fixture
def pipeline(isolated_settings: Settings, tmp_path: Path) -> Iterator[tuple[Settings, Path]]:
    m = isolated_settings.metrics
    for port in (m.ingest_port, m.transcode_port, m.watcher_port, m.projector_port):
        assert not port_in_use("127.0.0.1", port), (
            f"port {port} is in use (is `make up` running?): "
            "stop it with `vidflow down --keep-services`"
        )
    ingest = msgspec.structs.replace(
        isolated_settings.ingest, chunk_size=5 * MiB, stream_timeout=2.0,
        watch_roots=(str(tmp_path),),
    )  # fmt: skip
    transcode = msgspec.structs.replace(
        isolated_settings.transcode, preset="ultrafast",
        profiles_json='{"default": [{"height": 144, "video_kbps": 150}]}',
    )  # fmt: skip
    settings = msgspec.structs.replace(
        isolated_settings, ingest=ingest, transcode=transcode, home=tmp_path / "home"
    )
    drop = tmp_path / "drop"
    drop.mkdir()
    env = {**settings_environ(settings), "PATH": "/usr/bin:/bin", "HOME": str(Path.home())}
    flow = FlowProcess(
        "dataflows.ingest_flow", settings, tmp_path / "flow",
        extra_env={"VIDFLOW_METRICS_INGEST_PORT": str(m.ingest_port)},
    ).start()  # fmt: skip
    transcoder = FlowProcess(
        "dataflows.transcode_flow", settings, tmp_path / "transcode",
        extra_env={"VIDFLOW_METRICS_TRANSCODE_PORT": str(m.transcode_port)},
    ).start()  # fmt: skip
    watcher = subprocess.Popen(
        [sys.executable, "-m", "vidflow", "watch", str(drop)], cwd=ROOT, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    projector = subprocess.Popen(
        [sys.executable, "-m", "vidflow", "portal", "project"], cwd=ROOT, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        yield settings, drop
    finally:
        for process in (watcher, projector):
            process.terminate()
            process.wait(10)
        flow.stop()
        transcoder.stop()


def test_every_panel_query_returns_data(pipeline: tuple[Settings, Path], tmp_path: Path) -> None:
    settings, drop = pipeline
    assert DASHBOARDS, "no dashboards under deploy/grafana/dashboards"
    status = TopicReader(settings, settings.kafka.topic_status)
    raw_clip(tmp_path / "clip.mkv", seconds=3).rename(drop / "camera.mkv")
    status.wait_for(lambda es: any(isinstance(e, ev.JobCompleted) for e in es), 120)
    status.close()

    queries = panel_queries()
    empty: list[str] = []
    deadline = time.monotonic() + 60  # two scrapes (5 s apart) give rate() its samples
    while time.monotonic() < deadline:
        empty = []
        for board, title, expr in queries:
            answer = query(settings, expr)
            assert answer["status"] == "success", f"{board} / {title}: {answer}"
            if not answer["data"]["result"]:
                empty.append(f"{board} / {title}: {expr}")
        if not empty:
            break
        time.sleep(0.5)
    assert not empty, "panels without data:\n" + "\n".join(empty)
    assert len(queries) >= 16
