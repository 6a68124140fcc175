"""Prometheus of the local stack: what it scrapes and the alerting rules it evaluates."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from core.settings import Settings
from vidflow.stack.errors import StackError
from vidflow.stack.service import Launch, Service, StackPaths, http_ok

__all__ = ["ALERT_RULES", "Prometheus"]

# The alerting rules compose loads too; the stack reads them from the source tree it runs from.
ALERT_RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "alerts.yml"


class Prometheus(Service):
    """Prometheus scraping every vidflow process and MinIO, and evaluating vidflow's alerts."""

    name = "prometheus"
    setting = "VIDFLOW_METRICS_PROMETHEUS_PORT"

    def address(self, settings: Settings) -> str:
        return f"127.0.0.1:{settings.metrics.prometheus_port}"

    def config(self, settings: Settings) -> dict[str, object]:
        """Scrape configuration for the local stack (YAML is a superset of JSON)."""
        m = settings.metrics

        def job(name: str, target: str, path: str = "/metrics") -> dict[str, object]:
            return {
                "job_name": name,
                "metrics_path": path,
                "static_configs": [{"targets": [target]}],
            }

        return {
            "global": {"scrape_interval": "5s", "evaluation_interval": "5s"},
            "rule_files": [str(ALERT_RULES)],
            "scrape_configs": [
                job("prometheus", self.address(settings)),
                job("minio", settings.storage.endpoint, "/minio/v2/metrics/cluster"),
                job("vidflow-ingest", f"127.0.0.1:{m.ingest_port}"),
                job("vidflow-transcode", f"127.0.0.1:{m.transcode_port}"),
                job("vidflow-watcher", f"127.0.0.1:{m.watcher_port}"),
                job("vidflow-projector", f"127.0.0.1:{m.projector_port}"),
                job("vidflow-webhooks", f"127.0.0.1:{m.webhooks_port}"),
                # the portal serves /metrics itself, on the one port it listens on
                job("vidflow-portal", f"127.0.0.1:{settings.portal.port}"),
            ],
        }

    def launch(self, settings: Settings, paths: StackPaths, tools: dict[str, Path]) -> Launch:
        root = paths.data(self.name)
        (root / "data").mkdir(parents=True, exist_ok=True)
        config = root / "prometheus.yml"
        if not ALERT_RULES.is_file():
            raise StackError("Prometheus's alerting rules are missing: run from a checkout")
        config.write_text(json.dumps(self.config(settings), indent=2))
        binary = shutil.which("prometheus")
        if binary is None:
            raise StackError("Prometheus not found: run `apt-get install prometheus`")
        argv = [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={root / 'data'}",
            f"--web.listen-address={self.address(settings)}",
            "--storage.tsdb.retention.time=7d",
            "--web.enable-lifecycle",
        ]
        return Launch(argv)

    def probe(self, settings: Settings) -> None:
        http_ok(f"http://{self.address(settings)}/-/ready")
