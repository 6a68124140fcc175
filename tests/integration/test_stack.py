"""`vidflow stack`: every service healthy, `env` reaches them, a killed Kafka comes back intact.

These run against the stack only when it is the source of services (no Docker engine and no
`VIDFLOW_*` endpoints): the fixture chain decides, and a stack that cannot start fails the run.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psycopg
import pytest

from connectors.kafka import (
    ensure_topics,
    flush_or_raise,
    make_consumer,
    make_producer,
    produce_event,
)
from tests.services import choose_source
from vidflow import events as ev
from vidflow.settings import Settings
from vidflow.stack import ensure_up, health
from vidflow.stack.process import read_pid
from vidflow.stack.services import StackPaths

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(choose_source() != "stack", reason="services come from docker or env"),
]

VIDFLOW = [sys.executable, "-m", "vidflow"]


def test_every_service_is_healthy(settings: Settings) -> None:
    rows = {row.name: row for row in health(settings)}
    assert set(rows) == {"kafka", "minio", "postgres", "prometheus"}
    assert all(row.healthy for row in rows.values()), rows
    done = subprocess.run(
        [*VIDFLOW, "stack", "status"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("healthy") == 4


def test_env_gives_a_shell_that_reaches_every_service(settings: Settings, tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text(
        "from vidflow.settings import load_settings\n"
        "from connectors.kafka import wait_for_kafka\n"
        "from connectors.storage import wait_for_storage\n"
        "import psycopg, urllib.request\n"
        "s = load_settings()\n"
        "wait_for_kafka(s.kafka, timeout=10)\n"
        "wait_for_storage(s.storage, timeout=10)\n"
        "psycopg.connect(s.postgres.dsn).execute('select 1')\n"
        "urllib.request.urlopen(f'http://127.0.0.1:{s.metrics.prometheus_port}/-/ready')\n"
        "print('reached', s.kafka.bootstrap, s.storage.endpoint, s.postgres.port)\n"
    )
    clean_env = {k: v for k, v in os.environ.items() if not k.startswith("VIDFLOW_")}
    vidflow = " ".join(VIDFLOW)
    script = f'eval "$({vidflow} stack env)" && env | grep -c ^VIDFLOW_ && {sys.executable} {probe}'
    done = subprocess.run(
        ["bash", "-c", script], capture_output=True, text=True, env=clean_env, check=False,
        cwd=Path(settings.home).resolve().parent,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"reached {settings.kafka.bootstrap} {settings.storage.endpoint}" in done.stdout
    assert int(done.stdout.splitlines()[0]) >= 10


def test_killed_kafka_comes_back_with_topics_and_messages(settings: Settings) -> None:
    k = settings.kafka
    topic = f"survivor-{uuid.uuid4().hex[:8]}"
    ensure_topics(k, [topic])
    sent = ev.FileDeleted(id=ev.event_id("survivor", topic), stream_id="s", host="h", path="/p")
    producer = make_producer(k)
    produce_event(producer, topic, sent)
    flush_or_raise(producer)

    pidfile = StackPaths(Path(settings.home).resolve()).pidfile("kafka")
    pid = read_pid(pidfile)
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    time.sleep(1)
    assert not {r.name: r for r in health(settings)}["kafka"].healthy

    ensure_up(settings)
    assert read_pid(pidfile) != pid

    consumer = make_consumer(k, group_id=f"survivor-{uuid.uuid4().hex}")
    consumer.subscribe([topic])
    try:
        received = None
        deadline = time.monotonic() + 60
        while received is None and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                received = ev.decode(message.value())
        assert received == sent
    finally:
        consumer.close()


def test_postgres_role_uses_configured_password(settings: Settings) -> None:
    with psycopg.connect(settings.postgres.dsn) as conn:
        assert conn.execute("select current_user").fetchone() == (settings.postgres.user,)
