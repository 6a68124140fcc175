"""The alerts Prometheus says are firing, for the operations page.

Prometheus evaluates vidflow's rules (``deploy/prometheus/alerts.yml``); the portal only asks it
what fires, within a short timeout, so an unreachable Prometheus costs the page one line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx

from core.errors import public_reason
from core.logs import get_logger
from core.settings import Settings

__all__ = ["PROMETHEUS_TIMEOUT", "Alerts", "FiringAlert", "firing_alerts"]

log = get_logger("vidflow.portal.operations")
PROMETHEUS_TIMEOUT = 2.0  # seconds the operations page waits for any answer of Prometheus


@dataclass
class FiringAlert:
    """One alert Prometheus reports as firing (pending ones are not shown)."""

    name: str
    severity: str
    summary: str
    since: str
    labels: dict[str, str]


@dataclass
class Alerts:
    """The alerts firing now; ``error`` set when Prometheus did not answer."""

    firing: list[FiringAlert] = field(default_factory=list)
    error: str = ""


async def firing_alerts(settings: Settings) -> Alerts:
    """The alerts of deploy/prometheus/alerts.yml firing now, from Prometheus's HTTP API.

    Prometheus evaluates the rules; the page only lists what it says is firing, within a short
    timeout so an unreachable Prometheus costs the page one line, not its answer.
    """
    url = f"http://127.0.0.1:{settings.metrics.prometheus_port}/api/v1/alerts"
    try:
        async with httpx.AsyncClient(timeout=PROMETHEUS_TIMEOUT) as client:
            response = await client.get(url)
            response.raise_for_status()
            found: list[dict[str, Any]] = response.json()["data"]["alerts"]
            firing = [
                FiringAlert(
                    name=str(a["labels"].get("alertname", "")),
                    severity=str(a["labels"].get("severity", "")),
                    summary=str(a.get("annotations", {}).get("summary", "")),
                    since=str(a.get("activeAt", ""))[:19].replace("T", " "),
                    labels={
                        k: str(v)
                        for k, v in a["labels"].items()
                        if k not in {"alertname", "severity"}
                    },
                )
                for a in found
                if a.get("state") == "firing"
            ]
    except (httpx.HTTPError, KeyError, ValueError, TypeError, AttributeError) as exc:
        log.warning("prometheus alerts unreachable", error=f"{type(exc).__name__}: {exc}")
        return Alerts(error=public_reason("Prometheus unreachable", exc))
    order = {"critical": 0, "warning": 1}
    return Alerts(firing=sorted(firing, key=lambda a: (order.get(a.severity, 2), a.name)))
