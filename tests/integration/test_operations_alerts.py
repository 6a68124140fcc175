"""The operations page lists the alerts a real Prometheus says are firing.

The stack's Prometheus is shared and was started before these rules existed, so the test starts
one of its own exactly as ``vidflow stack`` does (``Prometheus.launch``: the stack's scrape jobs
and deploy/prometheus/alerts.yml) plus a rules file with one alert that always fires and one
that stays pending. It checks that Prometheus loaded the vidflow rules, then that the page shows
the firing alert (escaped), not the pending one; and one short line when Prometheus is away.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from litestar.testing import TestClient

from core.settings import Settings
from portal.app import create_app
from tests.flows import free_port
from tests.portal_login import csrf_headers, log_in
from tests.unit.test_alert_rules import EXPECTED
from vidflow.stack.prometheus import Prometheus
from vidflow.stack.service import StackPaths

pytestmark = pytest.mark.integration

TEST_RULES = """
groups:
  - name: test
    rules:
      - alert: TestAlwaysFiring
        expr: vector(1)
        labels: { severity: critical, where: "<b>here</b>" }
        annotations: { summary: "fires <script>at once</script>" }
      - alert: TestStillPending
        expr: vector(1)
        for: 1h
        labels: { severity: warning }
        annotations: { summary: "pending for an hour" }
"""


def _api(port: int, path: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
        body: dict[str, Any] = json.load(response)
    return body


@pytest.fixture
def prometheus(portal_settings: Settings, tmp_path: Path) -> Iterator[Settings]:
    """A Prometheus of this test's own, configured by the stack, with the test rules added."""
    port = free_port()
    settings = msgspec.structs.replace(
        portal_settings,
        metrics=msgspec.structs.replace(portal_settings.metrics, prometheus_port=port),
    )
    service = Prometheus()
    launch = service.launch(settings, StackPaths(tmp_path / "stack"), {})
    rules = tmp_path / "test-rules.yml"
    rules.write_text(TEST_RULES)
    config = service.config(settings)
    config["rule_files"] = [*config["rule_files"], str(rules)]  # type: ignore[misc]
    (tmp_path / "stack" / "prometheus" / "prometheus.yml").write_text(json.dumps(config))
    log = (tmp_path / "prometheus.log").open("wb")
    process = subprocess.Popen(launch.argv, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                firing = [a for a in _api(port, "/api/v1/alerts")["data"]["alerts"]
                          if a["state"] == "firing"]  # fmt: skip
            except OSError:
                firing = []
            if firing or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        yield settings
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def test_the_page_shows_the_alerts_prometheus_says_are_firing(prometheus: Settings) -> None:
    port = prometheus.metrics.prometheus_port
    loaded = {
        rule["name"]
        for group in _api(port, "/api/v1/rules")["data"]["groups"]
        for rule in group["rules"]
    }
    assert loaded >= EXPECTED  # the stack's Prometheus loads deploy/prometheus/alerts.yml

    with TestClient(app=create_app(prometheus)) as client:
        log_in(client, prometheus, "root", "admin")
        page = client.get("/operations", headers=csrf_headers(client))
    assert page.status_code == 200
    section = page.text.split('<table id="alerts">', 1)[1].split("</table>", 1)[0]
    assert "TestAlwaysFiring" in section and "critical" in section
    assert "fires &lt;script&gt;at once&lt;/script&gt;" in section  # escaped, not markup
    assert "where=&lt;b&gt;here&lt;/b&gt;" in section
    assert "<script>" not in page.text
    assert "TestStillPending" not in section  # pending is not firing
    assert "Prometheus unreachable" not in page.text


def test_an_unreachable_prometheus_costs_the_page_one_line(portal_settings: Settings) -> None:
    away = msgspec.structs.replace(
        portal_settings,
        metrics=msgspec.structs.replace(portal_settings.metrics, prometheus_port=free_port()),
    )
    with TestClient(app=create_app(away)) as client:
        log_in(client, away, "root", "admin")
        page = client.get("/operations", headers=csrf_headers(client))
    assert page.status_code == 200
    lines = [line for line in page.text.splitlines() if "Prometheus unreachable" in line]
    assert len(lines) == 1 and "alerts" in lines[0]
    assert '<table id="alerts">' not in page.text
    assert f":{away.metrics.prometheus_port}" not in page.text  # no address leaks
