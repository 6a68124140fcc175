"""Pure parts of the stack: env rendering, Prometheus config, port detection."""

from __future__ import annotations

import shlex
import socket

from vidflow.settings import load_settings
from vidflow.stack.cli import render_env
from vidflow.stack.process import port_in_use
from vidflow.stack.services import Prometheus, split_host_port


def test_env_lines_are_shell_quoted() -> None:
    settings = load_settings({"VIDFLOW_POSTGRES_PASSWORD": "it's $ecret"})
    lines = render_env(settings).splitlines()
    assert all(line.startswith("export VIDFLOW_") for line in lines)
    password = next(line for line in lines if "POSTGRES_PASSWORD" in line)
    assert (
        shlex.split(password.removeprefix("export "))[0] == "VIDFLOW_POSTGRES_PASSWORD=it's $ecret"
    )


def test_prometheus_scrapes_every_vidflow_process() -> None:
    config = Prometheus().config(load_settings({"VIDFLOW_METRICS_INGEST_PORT": "29101"}))
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}  # type: ignore[index, union-attr]
    assert {"vidflow-ingest", "vidflow-transcode", "vidflow-portal", "minio"} <= set(jobs)
    assert jobs["vidflow-ingest"]["static_configs"] == [{"targets": ["127.0.0.1:29101"]}]


def test_split_host_port() -> None:
    assert split_host_port("127.0.0.1:19092") == ("127.0.0.1", 19092)
    assert split_host_port(":80") == ("127.0.0.1", 80)


def test_port_in_use() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert port_in_use("127.0.0.1", port)
    assert not port_in_use("127.0.0.1", port)
