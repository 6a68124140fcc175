"""Each port has one setting: Prometheus scrapes what the processes listen on, never a copy."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import msgspec
import pytest
import yaml

from core.settings import (
    TRANSCODE_CLUSTER_PORTS,
    MetricsSettings,
    Settings,
    SettingsError,
    load_settings,
)
from vidflow.stack.prometheus import Prometheus

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def _targets(config: dict[str, Any]) -> dict[str, list[str]]:
    return {
        job["job_name"]: [t for sc in job["static_configs"] for t in sc["targets"]]
        for job in config["scrape_configs"]
    }


def test_changing_the_portal_port_moves_the_prometheus_target() -> None:
    config = Prometheus().config(load_settings({"VIDFLOW_PORTAL_PORT": "28123"}))
    assert _targets(config)["vidflow-portal"] == ["127.0.0.1:28123"]


def test_the_portal_port_has_no_copy_in_the_metrics_settings() -> None:
    names = {field.name for field in msgspec.structs.fields(MetricsSettings)}
    assert "portal_port" not in names


def test_no_two_settings_name_the_same_default_port() -> None:
    settings = load_settings({})
    ports: dict[int, list[str]] = {}
    for group in ("postgres", "portal", "metrics"):
        for field in msgspec.structs.fields(getattr(settings, group)):
            if field.name == "port" or field.name.endswith("_port"):
                value = getattr(getattr(settings, group), field.name)
                ports.setdefault(value, []).append(f"{group}.{field.name}")
    for group, address in (("kafka", settings.kafka.bootstrap),
                           ("storage", settings.storage.endpoint)):  # fmt: skip
        ports.setdefault(int(address.rpartition(":")[2]), []).append(group)
    assert {port: names for port, names in ports.items() if len(names) > 1} == {}


def _compose_settings() -> Settings:
    """The settings every app container of deploy/compose.yaml runs with (defaults of
    ``${VAR:-default}`` taken, as on a machine that sets none)."""
    compose = yaml.safe_load(DEPLOY.joinpath("compose.yaml").read_text())
    env = {
        key: re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", str(value))
        for key, value in compose["x-vidflow-env"].items()
    }
    # each service adds its own Kafka principal; ports do not depend on which
    env |= {"VIDFLOW_KAFKA_USERNAME": "any", "VIDFLOW_KAFKA_PASSWORD": "any"}
    return load_settings(env)


def test_deploy_prometheus_scrapes_every_job_on_the_ports_the_containers_use() -> None:
    """deploy/prometheus.yml is static (service names as hosts): every job ``vidflow stack``
    scrapes is there, on the port the containers' settings give it."""
    expected = _targets(Prometheus().config(_compose_settings()))
    deployed = _targets(yaml.safe_load(DEPLOY.joinpath("prometheus.yml").read_text()))
    assert set(deployed) == set(expected)
    for job, targets in deployed.items():
        ports = [t.rpartition(":")[2] for t in targets]
        assert ports == [t.rpartition(":")[2] for t in expected[job]], job


def test_two_processes_on_one_port_are_refused_at_load_naming_both() -> None:
    with pytest.raises(SettingsError, match=r"VIDFLOW_METRICS_INGEST_PORT.*VIDFLOW_PORTAL_PORT"):
        load_settings({"VIDFLOW_PORTAL_PORT": "19101"})
    assert load_settings({"VIDFLOW_METRICS_WATCHER_PORT": "0", "VIDFLOW_METRICS_INGEST_PORT": "0"})


def test_the_processes_of_a_transcode_cluster_do_not_land_on_another_port() -> None:
    """Process ``i`` of a transcode cluster serves metrics on ``transcode_port + i``."""
    metrics = load_settings({}).metrics
    others = {metrics.ingest_port, metrics.watcher_port, metrics.projector_port,
              metrics.prometheus_port, load_settings({}).portal.port}  # fmt: skip
    cluster = {metrics.transcode_port + i for i in range(TRANSCODE_CLUSTER_PORTS)}
    assert TRANSCODE_CLUSTER_PORTS >= 4 and cluster & others == set()
    with pytest.raises(SettingsError, match="VIDFLOW_METRICS_TRANSCODE_PORT"):
        load_settings({"VIDFLOW_METRICS_TRANSCODE_PORT": str(metrics.ingest_port - 1)})
