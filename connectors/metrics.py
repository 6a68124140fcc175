"""Prometheus exposition for processes that are not web apps (flows, watcher)."""

from __future__ import annotations

import prometheus_client

__all__ = ["start_metrics_server"]

_started: set[int] = set()


def start_metrics_server(port: int, addr: str = "0.0.0.0") -> None:
    """Serve ``/metrics`` on ``port`` once per process (0 disables it)."""
    if port <= 0 or port in _started:
        return
    prometheus_client.start_http_server(port, addr=addr)
    _started.add(port)
