"""Importing a flow module touches nothing outside the process; its graph is built when asked.

Runs in a child interpreter whose settings point at ports nothing listens on: a flow module that
waited for storage or Kafka (or bound its metrics port) at import would hang there.
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NOWHERE = {
    "VIDFLOW_KAFKA_BOOTSTRAP": "127.0.0.1:1",
    "VIDFLOW_STORAGE_ENDPOINT": "127.0.0.1:1",
}
CHILD = """
import json, time
started = time.monotonic()
import dataflows.ingest_flow as ingest_flow
import dataflows.transcode_flow as transcode_flow
imported = time.monotonic() - started

from bytewax.testing import TestingSink, TestingSource
from connectors.storage import make_client
from dataflows.ingest.store import ChunkStore
from dataflows.transcode.cluster import ClusterShape
from core.layout import ObjectLayout
from core.settings import get_settings

settings = get_settings()
client = make_client(settings.storage)
store = ChunkStore(client, settings.storage.bucket, ObjectLayout(settings.storage))
started = time.monotonic()
ingest = ingest_flow.build_flow(
    settings, source=TestingSource([]), sink=TestingSink([]), store=store
)
transcode = transcode_flow.build_flow(
    settings, source=TestingSource([]), sink=TestingSink([]), client=client,
    shape=ClusterShape(workers_per_process=2),
)
built = time.monotonic() - started
print(json.dumps({"imported": imported, "built": built,
                  "flows": [ingest.flow_id, transcode.flow_id]}))
"""


def test_flow_modules_import_and_build_with_no_service_reachable() -> None:
    env = {**os.environ, **NOWHERE}
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", CHILD], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=20,
    )  # fmt: skip
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["flows"] == ["vidflow-ingest", "vidflow-transcode"]
    assert report["imported"] < 2.0, report
    assert report["built"] < 2.0, report
    assert elapsed < 10.0  # the interpreter and imports included: nothing waited for a service


def test_flow_is_a_zero_argument_factory_for_bytewax_run() -> None:
    """``python -m bytewax.run dataflows.<x>_flow:flow`` calls ``flow`` when it is a function."""
    for name in ("dataflows.ingest_flow", "dataflows.transcode_flow"):
        module = importlib.import_module(name)  # here, not at collection: it must be harmless
        assert inspect.isfunction(module.flow)
        assert not inspect.signature(module.flow).parameters
