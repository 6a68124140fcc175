"""What a local service of the stack is: where it listens, how it is prepared, started and
probed. Each service is a module of its own beside this one; ``services.SERVICES`` lists them."""

from __future__ import annotations

import urllib.request
from dataclasses import dataclass
from pathlib import Path

from core.settings import Settings

__all__ = ["Launch", "Service", "StackPaths", "http_ok", "split_host_port"]


def split_host_port(address: str) -> tuple[str, int]:
    """``"host:port"`` -> ``("host", port)``."""
    host, _, port = address.rpartition(":")
    return host or "127.0.0.1", int(port)


@dataclass(frozen=True)
class StackPaths:
    """Where a service's data, log and pid file live under the stack home."""

    home: Path

    def data(self, service: str) -> Path:
        return self.home / service

    def log(self, service: str) -> Path:
        return self.home / "logs" / f"{service}.log"

    def pidfile(self, service: str) -> Path:
        return self.home / "run" / f"{service}.pid"


@dataclass(frozen=True)
class Launch:
    """How to start a service process."""

    argv: list[str]
    env: dict[str, str] | None = None
    user: str | None = None


class Service:
    """A local service: subclasses say where it listens, how to prepare, start and probe it."""

    name: str
    setting: str  # the variable that moves it to another port

    def address(self, settings: Settings) -> str:
        raise NotImplementedError

    def ports(self, settings: Settings) -> list[int]:
        """Every port the service listens on (the address's, and any beside it)."""
        return [split_host_port(self.address(settings))[1]]

    def prepare(self, settings: Settings, paths: StackPaths, tools: dict[str, Path]) -> None:
        """One-time initialisation of the data directory (idempotent)."""

    def launch(self, settings: Settings, paths: StackPaths, tools: dict[str, Path]) -> Launch:
        raise NotImplementedError

    def probe(self, settings: Settings) -> None:
        """Raise unless the service answers a real request."""
        raise NotImplementedError

    def after_start(self, settings: Settings, paths: StackPaths) -> None:
        """Work that needs the running service (roles, databases)."""


def http_ok(url: str) -> None:
    """Raise unless ``url`` answers 200 (the health endpoints of MinIO and Prometheus)."""
    with urllib.request.urlopen(url, timeout=2) as response:
        if response.status != 200:
            raise ConnectionError(f"{url} answered {response.status}")
