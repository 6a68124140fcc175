"""``vidflow stack``: Kafka, MinIO, PostgreSQL and Prometheus as plain local processes.

For machines without a Docker engine (and for fast local work): software is installed once into
the cache directory, data lives under ``settings.home`` and survives ``down``/``up``, and
``ensure_up`` is idempotent, so tests and ``make up`` call it freely.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from connectors.kafka import ensure_topics, make_admin
from connectors.storage import ensure_bucket, make_client
from core.logs import get_logger
from core.settings import Settings
from vidflow.stack.acls import ensure_acls, grants
from vidflow.stack.credentials import stack_login
from vidflow.stack.errors import StackError
from vidflow.stack.install import install_all
from vidflow.stack.kafka import Kafka
from vidflow.stack.process import (
    exclusive,
    port_in_use,
    running_pid,
    start_detached,
    stop_pidfile,
    tail,
)
from vidflow.stack.service import Service, StackPaths, split_host_port
from vidflow.stack.services import SERVICES

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


def _admin(settings: Settings) -> Settings:
    """The stack does its own work as its Kafka ``admin`` (read afresh: a first start makes the
    passwords); a stack without logins yet is reached as it is."""
    return stack_login(settings, force=True)


def _warn_without_logins(settings: Settings, paths: StackPaths) -> None:
    """A broker started before the stack had logins keeps running without them (so a shared
    stack does not break under its users); it is upgraded at its next start."""
    if (
        running_pid(paths.pidfile(Kafka.name)) is not None
        and not Kafka.users_marker(paths).exists()
    ):
        log.warning(
            "kafka runs without SASL logins or ACLs (started before the stack had them); "
            "`vidflow stack down && vidflow stack up` upgrades it, keeping its data",
            bootstrap=settings.kafka.bootstrap,
        )


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
    settings = _admin(settings)
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
    """Topics, ACLs, bucket and database schema: what the pipeline expects to exist.

    ``settings`` must log in as a Kafka super user when the broker authenticates; the ACLs
    (:func:`vidflow.stack.acls.grants`) are made for the configured topic names.
    """
    from portal.migrate import upgrade

    ensure_topics(settings.kafka)
    if settings.kafka.security_protocol != "PLAINTEXT":
        ensure_acls(make_admin(settings.kafka), grants(settings.kafka))
    ensure_bucket(make_client(settings.storage), settings.storage)
    upgrade(settings)


def ensure_up(settings: Settings, *, init: bool = True) -> list[ServiceHealth]:
    """Install what is missing, start what is not running, wait until every service answers."""
    paths = _paths(settings)
    _warn_without_logins(settings, paths)
    if any(_answers(s, _admin(settings)) is not None for s in SERVICES):
        with exclusive(paths.home / "run" / "stack.lock"):
            # whoever held the lock before us may have started them meanwhile: look again
            pending = [s for s in SERVICES if _answers(s, _admin(settings)) is not None]
            if pending:
                with exclusive(Path(settings.cache_dir) / "install.lock"):
                    tools = install_all(Path(settings.cache_dir))
                for service in pending:
                    if running_pid(paths.pidfile(service.name)) is None:
                        _start(service, settings, paths, tools)
                for service in pending:  # a first start has just made the passwords
                    _wait_healthy(service, _admin(settings), paths)
                    log.info("healthy", service=service.name)
    admin = _admin(settings)
    for service in SERVICES:
        service.after_start(admin, paths)
    if init:
        init_resources(admin)
    return health(settings)


def stop(settings: Settings) -> list[str]:
    """Stop every service this stack started (data is kept); returns the names stopped."""
    paths = _paths(settings)
    return [s.name for s in reversed(SERVICES) if stop_pidfile(paths.pidfile(s.name))]
