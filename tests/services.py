"""Where the test run gets real services from, in order of preference.

1. Environment variables (``VIDFLOW_KAFKA_BOOTSTRAP`` set): services someone already runs.
2. testcontainers, when a Docker engine answers.
3. ``vidflow stack``: local processes installed and started on demand (the path with no engine).

With no ``VIDFLOW_KAFKA_USERNAME`` given, tests log in to a ``vidflow stack`` Kafka (paths 1
and 3) as the admin the stack made (its passwords are under ``VIDFLOW_HOME``).

Whatever the source, each service must answer a real request; one that cannot be had fails the
run with the reason. Nothing is ever skipped.
"""

from __future__ import annotations

import os
import socket
import warnings
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Literal

from connectors.kafka import ensure_topics, wait_for_kafka
from connectors.storage import ensure_bucket, make_client, wait_for_storage
from core.settings import Settings, load_settings
from vidflow.stack.credentials import stack_login

Source = Literal["env", "testcontainers", "stack"]

KAFKA_IMAGE = "confluentinc/cp-kafka:7.7.1"
MINIO_IMAGE = "minio/minio:RELEASE.2025-09-07T16-13-09Z"
POSTGRES_IMAGE = "postgres:16-alpine"
DOCKER_SOCKET = "/var/run/docker.sock"


def docker_engine_answers() -> bool:
    """Whether a Docker engine (not only the client) answers a ping."""
    if os.environ.get("DOCKER_HOST"):
        try:
            import docker

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ResourceWarning)
                client = docker.from_env(timeout=3)
                try:
                    return bool(client.ping())
                finally:
                    client.close()
        except Exception:  # noqa: BLE001 - any failure means "no engine here"
            return False
    if not Path(DOCKER_SOCKET).exists():
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(3)
            sock.connect(DOCKER_SOCKET)
            sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            head = sock.recv(64)
        return head.startswith(b"HTTP/1.") and b" 200 " in head
    except OSError:
        return False


def choose_source() -> Source:
    """Pick where services come from (``VIDFLOW_TEST_SERVICES`` forces a choice)."""
    forced = os.environ.get("VIDFLOW_TEST_SERVICES")
    if forced in {"env", "testcontainers", "stack"}:
        return forced  # type: ignore[return-value]
    if os.environ.get("VIDFLOW_KAFKA_BOOTSTRAP"):
        return "env"
    return "testcontainers" if docker_engine_answers() else "stack"


@contextmanager
def _containers() -> Iterator[Settings]:
    from testcontainers.community.kafka import KafkaContainer
    from testcontainers.community.minio import MinioContainer
    from testcontainers.community.postgres import PostgresContainer

    with ExitStack() as stack:
        kafka = stack.enter_context(KafkaContainer(KAFKA_IMAGE).with_kraft())
        minio = stack.enter_context(
            MinioContainer(MINIO_IMAGE, access_key="vidflow", secret_key="vidflow-secret")
        )
        postgres = stack.enter_context(
            PostgresContainer(
                POSTGRES_IMAGE,
                username="vidflow",
                password="vidflow",
                dbname="vidflow",
                driver="psycopg",
            )
        )
        minio_config = minio.get_config()
        environ = dict(os.environ)
        environ.update(
            {
                "VIDFLOW_KAFKA_BOOTSTRAP": kafka.get_bootstrap_server(),
                "VIDFLOW_STORAGE_ENDPOINT": minio_config["endpoint"],
                "VIDFLOW_POSTGRES_HOST": postgres.get_container_host_ip(),
                "VIDFLOW_POSTGRES_PORT": str(postgres.get_exposed_port(5432)),
            }
        )
        yield load_settings(environ)


def _prepare(settings: Settings) -> None:
    """Topics, bucket and schema, as ``vidflow stack up`` makes them."""
    from portal.migrate import upgrade

    wait_for_kafka(settings.kafka, timeout=120)
    wait_for_storage(settings.storage, timeout=120)
    ensure_topics(settings.kafka)
    ensure_bucket(make_client(settings.storage), settings.storage)
    upgrade(settings)


@contextmanager
def real_services() -> Iterator[tuple[Source, Settings]]:
    """Yield settings that reach real Kafka, MinIO and PostgreSQL, and where they came from."""
    source = choose_source()
    if source == "testcontainers":
        with _containers() as settings:
            _prepare(settings)
            yield source, settings
        return
    settings = load_settings()
    if source == "stack":
        from vidflow.stack import ensure_up

        ensure_up(settings)
    # tests log in as the stack's admin (a super user: they make and delete their own topics)
    settings = stack_login(settings)
    _prepare(settings)
    yield source, settings
