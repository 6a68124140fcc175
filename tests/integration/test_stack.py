"""`vidflow stack` as a user drives it: a stack of its own (own home, own ports) beside the one
the rest of the run uses, so these tests run whatever the services of the run come from.

Every service healthy, `env` gives a shell that reaches them, a killed Kafka comes back with its
topics and messages, data survives `down`/`up`, and a taken port is refused naming the fix.
"""

from __future__ import annotations

import io
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from confluent_kafka import KafkaException

from connectors.kafka import (
    ensure_topics,
    flush_or_raise,
    make_admin,
    make_consumer,
    make_producer,
    produce_event,
    wait_for_kafka,
)
from connectors.storage import make_client
from core import events as ev
from core.settings import Settings, load_settings
from vidflow.stack import health
from vidflow.stack.credentials import stack_login
from vidflow.stack.install import install_all
from vidflow.stack.kafka import Kafka, new_cluster_id
from vidflow.stack.process import read_pid, start_detached, stop_pidfile
from vidflow.stack.service import StackPaths

pytestmark = pytest.mark.integration

VIDFLOW = [sys.executable, "-m", "vidflow"]

# The tests of the module's own stack run on one xdist worker (``--dist loadgroup``), one after
# the other, so the stack is started once; the others go to any worker.
SAME_STACK = pytest.mark.xdist_group("test_stack.own_stack")


def free_pair() -> int:
    """A port ``p`` with ``p`` and ``p + 1`` both free (Kafka's controller, MinIO's console)."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        with socket.socket() as beside:
            try:
                beside.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port


def clean_environ() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("VIDFLOW_")}


def stack_home(settings: Settings) -> Path:
    """A home under the session's own (pytest's temporary directories are private to root, and
    PostgreSQL runs as the `postgres` user, which must reach its data directory)."""
    return Path(settings.home).resolve() / "test-stacks" / uuid.uuid4().hex[:10]


def stack_environ(home: Path) -> dict[str, str]:
    """Settings of a second stack: its own home and ports, the shared install cache."""
    return {
        **clean_environ(),
        "VIDFLOW_HOME": str(home),
        "VIDFLOW_KAFKA_BOOTSTRAP": f"127.0.0.1:{free_pair()}",
        "VIDFLOW_STORAGE_ENDPOINT": f"127.0.0.1:{free_pair()}",
        "VIDFLOW_POSTGRES_PORT": str(free_pair()),
        "VIDFLOW_METRICS_PROMETHEUS_PORT": str(free_pair()),
    }


def vidflow(environ: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*VIDFLOW, *args], env=environ, capture_output=True, text=True, check=False, timeout=600
    )


@pytest.fixture(scope="module")
def own_stack(settings: Settings) -> Iterator[Settings]:
    """A second stack started with `vidflow stack up` (installs come from the shared cache the
    session's services already filled), stopped with `vidflow stack down` afterwards."""
    home = stack_home(settings)
    environ = stack_environ(home)
    try:
        up = vidflow(environ, "stack", "up")
        assert up.returncode == 0, up.stdout + up.stderr
        yield stack_login(load_settings(environ))  # Kafka as the admin the stack made
    finally:
        vidflow(environ, "stack", "down")
        shutil.rmtree(home, ignore_errors=True)


def environ_of(settings: Settings) -> dict[str, str]:
    return {
        **clean_environ(),
        "VIDFLOW_HOME": str(settings.home),
        "VIDFLOW_KAFKA_BOOTSTRAP": settings.kafka.bootstrap,
        "VIDFLOW_STORAGE_ENDPOINT": settings.storage.endpoint,
        "VIDFLOW_POSTGRES_PORT": str(settings.postgres.port),
        "VIDFLOW_METRICS_PROMETHEUS_PORT": str(settings.metrics.prometheus_port),
    }


@SAME_STACK
def test_every_service_is_healthy(own_stack: Settings) -> None:
    rows = {row.name: row for row in health(own_stack)}
    assert set(rows) == {"kafka", "minio", "postgres", "prometheus"}
    assert all(row.healthy for row in rows.values()), rows
    done = vidflow(environ_of(own_stack), "stack", "status")
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("healthy") == 4
    assert own_stack.kafka.bootstrap in done.stdout


@SAME_STACK
def test_env_gives_a_shell_that_reaches_every_service(own_stack: Settings, tmp_path: Path) -> None:
    exports = vidflow(environ_of(own_stack), "stack", "env")
    assert exports.returncode == 0, exports.stderr
    probe = tmp_path / "probe.py"
    probe.write_text(
        "from core.settings import load_settings\n"
        "from connectors.kafka import wait_for_kafka\n"
        "from connectors.storage import wait_for_storage\n"
        "import psycopg, urllib.request\n"
        "s = load_settings()\n"
        "wait_for_kafka(s.kafka, timeout=10)\n"
        "wait_for_storage(s.storage, timeout=10)\n"
        "psycopg.connect(s.postgres.dsn).close()\n"
        "urllib.request.urlopen(f'http://127.0.0.1:{s.metrics.prometheus_port}/-/ready')\n"
        "print('reached', s.kafka.bootstrap, s.storage.endpoint, s.postgres.port)\n"
    )
    script = f"{exports.stdout}\nenv | grep -c ^VIDFLOW_ && {sys.executable} {probe}"
    done = subprocess.run(
        ["bash", "-c", script], capture_output=True, text=True, env=clean_environ(), check=False
    )
    assert done.returncode == 0, done.stderr
    reached = f"reached {own_stack.kafka.bootstrap} {own_stack.storage.endpoint}"
    assert reached in done.stdout
    assert int(done.stdout.splitlines()[0]) >= 10
    assert "export VIDFLOW_KAFKA_USERNAME=admin" in exports.stdout


@SAME_STACK
def test_env_for_a_principal_gives_its_kafka_login_and_nothing_else(own_stack: Settings) -> None:
    exports = vidflow(environ_of(own_stack), "stack", "env", "--principal", "producer")
    assert exports.returncode == 0, exports.stderr
    values = dict(
        shlex.split(line.removeprefix("export "))[0].split("=", 1)
        for line in exports.stdout.splitlines()
    )
    assert set(values) == {
        "VIDFLOW_KAFKA_BOOTSTRAP", "VIDFLOW_KAFKA_SECURITY_PROTOCOL",
        "VIDFLOW_KAFKA_SASL_MECHANISM", "VIDFLOW_KAFKA_USERNAME", "VIDFLOW_KAFKA_PASSWORD",
    }  # fmt: skip
    assert values["VIDFLOW_KAFKA_USERNAME"] == "producer"
    producer = make_producer(load_settings(values).kafka, **{"message.timeout.ms": 15000})
    outcomes: dict[str, object] = {}
    for topic in (own_stack.kafka.topic_uploads, own_stack.kafka.topic_status):
        producer.produce(
            topic, value=b"probe", on_delivery=lambda err, _, t=topic: outcomes.update({t: err})
        )
    flush_or_raise(producer, timeout=20)
    # the stack's own ACLs: uploads yes, anything else no
    assert outcomes[own_stack.kafka.topic_uploads] is None
    refused = outcomes[own_stack.kafka.topic_status]
    assert refused is not None and "TOPIC_AUTHORIZATION_FAILED" in str(refused)


def test_a_kafka_from_before_logins_is_upgraded_keeping_its_messages(settings: Settings) -> None:
    """A data directory made when the stack had no logins: the next `up` gives it SCRAM users
    and ACLs without losing a message (Kafka is the log of record)."""
    home = stack_home(settings)
    environ = stack_environ(home)
    old = load_settings(environ)
    paths, kafka = StackPaths(home), Kafka()
    data = paths.data("kafka")
    data.mkdir(parents=True)
    libs = install_all(Path(old.cache_dir))["kafka"]
    config = kafka.config(old, paths, None)  # the plaintext broker the stack used to run
    cluster = new_cluster_id()
    formatting = ["format", "-t", cluster, "-c", str(config)]
    subprocess.run(
        kafka.java(libs, data, "kafka.tools.StorageTool", *formatting),
        check=True, capture_output=True,
    )  # fmt: skip
    start_detached(
        kafka.java(libs, data, "kafka.Kafka", str(config)),
        pidfile=paths.pidfile("kafka"), log=paths.log("kafka"),
    )  # fmt: skip
    try:
        wait_for_kafka(old.kafka, timeout=120)
        topic = f"kept-{uuid.uuid4().hex[:8]}"
        sent = _produce_one(old, topic)
        stop_pidfile(paths.pidfile("kafka"))

        up = vidflow(environ, "stack", "up")
        assert up.returncode == 0, up.stdout + up.stderr
        assert _consume_one(stack_login(old), topic) == sent
        with pytest.raises(KafkaException):  # and no one gets in without a login any more
            make_admin(old.kafka, quiet=True).list_topics(timeout=5)
    finally:
        vidflow(environ, "stack", "down")
        stop_pidfile(paths.pidfile("kafka"))
        shutil.rmtree(home, ignore_errors=True)


def _consume_one(settings: Settings, topic: str) -> ev.AnyEvent | None:
    consumer = make_consumer(settings.kafka, group_id=f"survivor-{uuid.uuid4().hex}")
    consumer.subscribe([topic])
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                return ev.decode(message.value())
        return None
    finally:
        consumer.close()


def _produce_one(settings: Settings, topic: str) -> ev.FileDeleted:
    ensure_topics(settings.kafka, [topic])
    sent = ev.FileDeleted(id=ev.event_id("survivor", topic), stream_id="s", host="h", path="/p")
    producer = make_producer(settings.kafka)
    produce_event(producer, topic, sent)
    flush_or_raise(producer)
    return sent


@SAME_STACK
def test_killed_kafka_comes_back_with_topics_and_messages(own_stack: Settings) -> None:
    topic = f"survivor-{uuid.uuid4().hex[:8]}"
    sent = _produce_one(own_stack, topic)
    pidfile = StackPaths(Path(own_stack.home).resolve()).pidfile("kafka")
    pid = read_pid(pidfile)
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    _wait_gone(pid)
    assert not {r.name: r for r in health(own_stack)}["kafka"].healthy

    up = vidflow(environ_of(own_stack), "stack", "up")
    assert up.returncode == 0, up.stdout + up.stderr
    assert read_pid(pidfile) not in (None, pid)
    assert _consume_one(own_stack, topic) == sent


def _wait_gone(pid: int, timeout: float = 30.0) -> None:
    """Until process ``pid`` is dead (gone, or a zombie not reaped yet)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                return
        except (FileNotFoundError, ProcessLookupError):
            return
        assert time.monotonic() < deadline, f"process {pid} still alive after SIGKILL"
        time.sleep(0.05)


@SAME_STACK
def test_data_survives_down_and_up(own_stack: Settings) -> None:
    topic = f"kept-{uuid.uuid4().hex[:8]}"
    sent = _produce_one(own_stack, topic)
    client = make_client(own_stack.storage)
    key = f"kept/{uuid.uuid4().hex}"
    client.put_object(own_stack.storage.bucket, key, io.BytesIO(b"still here"), 10)
    table = f"kept_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(own_stack.postgres.dsn, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {table} (note text)")
        conn.execute(f"INSERT INTO {table} VALUES ('still here')")

    environ = environ_of(own_stack)
    down = vidflow(environ, "stack", "down")
    assert down.returncode == 0, down.stderr
    assert not any(row.healthy for row in health(own_stack))
    up = vidflow(environ, "stack", "up")
    assert up.returncode == 0, up.stdout + up.stderr

    assert _consume_one(own_stack, topic) == sent
    body = client.get_object(own_stack.storage.bucket, key)
    try:
        assert body.read() == b"still here"
    finally:
        body.close()
        body.release_conn()
    with psycopg.connect(own_stack.postgres.dsn) as conn:
        assert conn.execute(f"SELECT note FROM {table}").fetchall() == [("still here",)]


def test_a_taken_port_is_refused_naming_the_setting(settings: Settings) -> None:
    home = stack_home(settings)
    environ = stack_environ(home)
    kafka_port = int(environ["VIDFLOW_KAFKA_BOOTSTRAP"].rsplit(":", 1)[1])
    with socket.socket() as squatter:  # something else listens right above the broker's port
        squatter.bind(("127.0.0.1", kafka_port + 1))
        squatter.listen()
        done = vidflow(environ, "stack", "up")
    assert done.returncode != 0
    message = done.stdout + done.stderr
    vidflow(environ, "stack", "down")
    shutil.rmtree(home, ignore_errors=True)
    assert f"port {kafka_port + 1}" in message and "VIDFLOW_KAFKA_BOOTSTRAP" in message


def test_postgres_role_uses_configured_password(settings: Settings) -> None:
    with psycopg.connect(settings.postgres.dsn) as conn:
        assert conn.execute("select current_user").fetchone() == (settings.postgres.user,)
