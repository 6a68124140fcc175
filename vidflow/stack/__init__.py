"""``vidflow stack``: Kafka, MinIO, PostgreSQL and Prometheus as plain local processes.

For machines without a Docker engine (and for fast local work): software is installed once into
the cache directory, data lives under ``settings.home`` and survives ``down``/``up``, and
``ensure_up`` is idempotent, so tests and ``make up`` call it freely.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from connectors.kafka import ensure_topics
from connectors.storage import ensure_bucket, make_client
from vidflow.logs import get_logger
from vidflow.settings import Settings
from vidflow.stack.errors import StackError
from vidflow.stack.install import install_all
from vidflow.stack.process import (
    exclusive,
    port_in_use,
    running_pid,
    start_detached,
    stop_pidfile,
    tail,
)
from vidflow.stack.services import SERVICES, Service, StackPaths, split_host_port

__all__ = ["ServiceHealth", "StackError", "ensure_up", "health", "init_resources", "stop"]

log = get_logger("vidflow.stack")
START_TIMEOUT = 120.0


@dataclass(frozen=True)
class ServiceHealth:
    """One service as ``status`` shows it."""

    name: str
    address: str
    healthy: bool
    pid: int | None
    detail: str = ""


def _paths(settings: Settings) -> StackPaths:
    return StackPaths(Path(settings.home).resolve())


def _answers(service: Service, settings: Settings) -> str | None:
    """None when healthy, else why not."""
    try:
        service.probe(settings)
    except Exception as exc:  # noqa: BLE001 - any probe failure is "not healthy", with the reason
        return f"{type(exc).__name__}: {exc}"
    return None


def health(settings: Settings) -> list[ServiceHealth]:
    """Each service, probed for real."""
    paths = _paths(settings)
    return [
        ServiceHealth(
            name=service.name,
            address=service.address(settings),
            healthy=(problem := _answers(service, settings)) is None,
            pid=running_pid(paths.pidfile(service.name)),
            detail=problem or "",
        )
        for service in SERVICES
    ]


def _start(service: Service, settings: Settings, paths: StackPaths, tools: dict[str, Path]) -> None:
    host, _ = split_host_port(service.address(settings))
    for port in service.ports(settings):
        if port_in_use(host, port):
            raise StackError(
                f"{service.name}: port {port} on {host} is taken by another program "
                f"(not answering as {service.name}); stop it or point {service.setting} elsewhere"
            )
    service.prepare(settings, paths, tools)
    launch = service.launch(settings, paths, tools)
    pid = start_detached(
        launch.argv,
        pidfile=paths.pidfile(service.name),
        log=paths.log(service.name),
        env=launch.env,
        user=launch.user,
    )
    log.info("started", service=service.name, pid=pid, address=service.address(settings))


def _wait_healthy(service: Service, settings: Settings, paths: StackPaths) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while (problem := _answers(service, settings)) is not None:
        if running_pid(paths.pidfile(service.name)) is None:
            raise StackError(
                f"{service.name} exited during start-up; last lines of {paths.log(service.name)}:\n"
                + tail(paths.log(service.name))
            )
        if time.monotonic() > deadline:
            raise StackError(
                f"{service.name} did not become healthy within {START_TIMEOUT:.0f}s ({problem}); "
                f"last lines of {paths.log(service.name)}:\n" + tail(paths.log(service.name))
            )
        time.sleep(0.5)


def init_resources(settings: Settings) -> None:
    """Topics, bucket and database schema: what the pipeline expects to exist."""
    from portal.migrate import upgrade

    ensure_topics(settings.kafka)
    ensure_bucket(make_client(settings.storage), settings.storage)
    upgrade(settings)


def ensure_up(settings: Settings, *, init: bool = True) -> list[ServiceHealth]:
    """Install what is missing, start what is not running, wait until every service answers."""
    paths = _paths(settings)
    if any(_answers(s, settings) is not None for s in SERVICES):
        with exclusive(paths.home / "run" / "stack.lock"):
            # whoever held the lock before us may have started them meanwhile: look again
            pending = [s for s in SERVICES if _answers(s, settings) is not None]
            if pending:
                with exclusive(Path(settings.cache_dir) / "install.lock"):
                    tools = install_all(Path(settings.cache_dir))
                for service in pending:
                    if running_pid(paths.pidfile(service.name)) is None:
                        _start(service, settings, paths, tools)
                for service in pending:
                    _wait_healthy(service, settings, paths)
                    log.info("healthy", service=service.name)
    for service in SERVICES:
        service.after_start(settings, paths)
    if init:
        init_resources(settings)
    return health(settings)


def stop(settings: Settings) -> list[str]:
    """Stop every service this stack started (data is kept); returns the names stopped."""
    paths = _paths(settings)
    return [s.name for s in reversed(SERVICES) if stop_pidfile(paths.pidfile(s.name))]
