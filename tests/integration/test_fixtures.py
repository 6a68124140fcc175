"""The test run's own machinery on real services: what every integration test's teardown does
must be right, and must not cost a fixed wait."""

from __future__ import annotations

import gc
import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psycopg
import psycopg.conninfo
import pytest

from connectors.kafka import flush_or_raise, make_producer, produce_event
from core import events as ev
from core.settings import Settings
from tests.databases import drop_database
from tests.flows import ROOT
from tests.integration.conftest import read_topic

pytestmark = pytest.mark.integration


def test_read_topic_returns_every_message_once_the_end_is_reached(
    isolated_settings: Settings,
) -> None:
    """The teardown's public-failure check reads the status and dead-letter topics of every
    test: a read that waits out a fixed batch timeout (it waited 5 s per topic) costs each test
    seconds; the end offset is known, so the read stops when it gets there."""
    topic = isolated_settings.kafka.topic_status
    sent = [
        ev.FileDeleted(id=ev.event_id(f"r{i}", topic), stream_id=f"s{i}", host="h", path="/p")
        for i in range(5)
    ]
    producer = make_producer(isolated_settings.kafka)
    for event in sent:
        produce_event(producer, topic, event)
    flush_or_raise(producer)

    started = time.monotonic()
    values = read_topic(isolated_settings, topic)
    elapsed = time.monotonic() - started

    assert sorted(values) == sorted(ev.encode(e) for e in sent)
    assert elapsed < 2.0, f"reading 5 messages took {elapsed:.1f}s"
    assert read_topic(isolated_settings, isolated_settings.kafka.topic_dlq) == []


def test_a_refused_drop_is_asked_again_then_raised_with_the_connection_closed(
    settings: Settings,
) -> None:
    """A test database's drop was refused once in a run (an autovacuum backend of another role
    on it), failing the teardown and leaking the admin connection (a ResourceWarning failed the
    next test). A refusal that passes is asked again until the time is up; the connection is
    closed either way. Refused for good here: the ``postgres`` database is not ours to drop."""
    started = time.monotonic()
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        drop_database(settings.postgres.dsn, "postgres", timeout=1.0)
    assert time.monotonic() - started >= 1.0  # asked again, not given up at once
    gc.collect()  # an unclosed connection would warn (an error in this run) right here


def test_a_database_in_use_is_dropped_with_its_connections(settings: Settings) -> None:
    name = f"t_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(settings.postgres.dsn, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    dsn = psycopg.conninfo.make_conninfo(settings.postgres.dsn, dbname=name)
    with psycopg.connect(dsn) as held:
        drop_database(settings.postgres.dsn, name)
        with pytest.raises(psycopg.OperationalError):
            held.execute("SELECT 1")
    with psycopg.connect(settings.postgres.dsn) as admin:
        found = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchall()
    assert found == []


GROUPED = """
import os
import pytest

SAME = pytest.mark.xdist_group("same")

@SAME
def test_a():
    print("worker", os.environ["PYTEST_XDIST_WORKER"])

@SAME
def test_b():
    print("worker", os.environ["PYTEST_XDIST_WORKER"])

@pytest.mark.parametrize("n", range(6))
def test_other(n):
    pass
"""


def test_tests_of_one_xdist_group_run_on_one_worker(tmp_path: Path) -> None:
    """``make test`` keeps the tests sharing the test stack's module fixture on one worker
    with an ``xdist_group`` mark; under pytest 9 the mark did nothing (each worker that got
    one started a stack of its own) until tests/xdist_groups.py mended it."""
    (tmp_path / "test_grouped.py").write_text(GROUPED)
    (tmp_path / "conftest.py").write_text('pytest_plugins = ["tests.xdist_groups"]\n')
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-n", "2",
         "--dist", "loadgroup", "-rA", "-s", "-v", str(tmp_path)],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    ran_on = re.findall(r"\[(gw\d)\] .*PASSED .*::test_[ab]@same", done.stdout)
    assert len(ran_on) == 2 and len(set(ran_on)) == 1, done.stdout
