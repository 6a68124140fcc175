"""Cluster shape from bytewax.run's flags, the unit mode auto picks, and unit routing keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from dataflows.transcode.cluster import (
    ClusterShape,
    choose_unit_mode,
    cluster_shape,
    siphash13,
    unit_routing_keys,
    worker_for,
)


def test_shape_from_flags() -> None:
    argv = ["dataflows.transcode_flow:flow", "-w", "2", "-r", "rec", "-s", "1", "-b", "0"]
    assert cluster_shape(argv, {}) == ClusterShape(1, 2, 0)
    cluster = ["f:flow", "-i", "1", "-a", "127.0.0.1:2101;127.0.0.1:2102"]
    assert cluster_shape(cluster, {}) == ClusterShape(2, 1, 1)
    long = ["f:flow", "--process-id=0", "--addresses=a:1;b:1;c:1", "--workers-per-process=3"]
    assert cluster_shape(long, {}) == ClusterShape(3, 3, 0)
    assert cluster_shape(["f:flow", "-w3"], {}) == ClusterShape(1, 3, 0)
    assert cluster_shape(["f:flow"], {}) == ClusterShape(1, 1, 0)


def test_shape_from_environment(tmp_path: Path) -> None:
    env = {"BYTEWAX_WORKERS_PER_PROCESS": "2", "BYTEWAX_PROCESS_ID": "1",
           "BYTEWAX_ADDRESSES": "h0:2101;h1:2101"}  # fmt: skip
    assert cluster_shape(["f:flow"], env) == ClusterShape(2, 2, 1)
    assert cluster_shape(["f:flow", "-w", "1"], env) == ClusterShape(2, 1, 1)  # flags win
    hosts = tmp_path / "hosts"
    hosts.write_text("h0:2101\nh1:2101\nh2:2101\n\n")
    pod = {"BYTEWAX_POD_NAME": "vf-2", "BYTEWAX_STATEFULSET_NAME": "vf",
           "BYTEWAX_HOSTFILE_PATH": str(hosts)}  # fmt: skip
    assert cluster_shape(["f:flow"], pod) == ClusterShape(3, 1, 2)


@pytest.mark.parametrize(
    ("setting", "shape", "cpus", "mode"),
    [
        ("auto", ClusterShape(1, 1, 0), 2, "ladder"),
        ("auto", ClusterShape(1, 2, 0), 2, "ladder"),  # more threads, same few cores
        ("auto", ClusterShape(1, 2, 0), 16, "rung"),  # plenty of cores per worker
        ("auto", ClusterShape(2, 1, 0), 2, "rung"),  # several processes to spread over
        ("rung", ClusterShape(1, 1, 0), 2, "rung"),
        ("ladder", ClusterShape(4, 1, 0), 64, "ladder"),
    ],
)
def test_auto_unit_mode(setting: str, shape: ClusterShape, cpus: int, mode: str) -> None:
    assert choose_unit_mode(setting, shape, cpus) == mode


# Where bytewax 0.21.1 itself put these keys (a stateful_map run with -w 2 and -w 3).
OBSERVED = [
    ("video0/job0/144p", 2, 1), ("video0/job0/240p#3", 2, 0), ("video1/job1/144p", 2, 1),
    ("video10/job10/ladder", 2, 0), ("video11/job11/144p", 2, 0),
    ("video1/job1/240p#3", 3, 2), ("video10/job10/144p", 3, 2), ("video10/job10/240p#3", 3, 1),
    ("video0/job0/ladder", 3, 0),
]  # fmt: skip


@pytest.mark.parametrize(("key", "workers", "worker"), OBSERVED)
def test_worker_for_matches_bytewax_routing(key: str, workers: int, worker: int) -> None:
    assert worker_for(key, workers) == worker


def test_siphash13_of_nothing() -> None:
    assert siphash13(b"") == 0xD1FBA762150C532C  # pinned: SipHash-1-3, zero keys


def test_routing_keys_spread_units_over_workers() -> None:
    units = ["144p", "240p", "360p", "480p"]
    keys = unit_routing_keys("video/job", units, 2)
    assert set(keys) == set(units)
    assert all(keys[u].startswith(f"video/job/{u}") for u in units)
    assert [worker_for(keys[u], 2) for u in units] in ([0, 1, 0, 1], [1, 0, 1, 0])
    three = unit_routing_keys("video/job", units[:3], 3)
    assert sorted(worker_for(k, 3) for k in three.values()) == [0, 1, 2]
    assert unit_routing_keys("video/job", units, 1) == {u: f"video/job/{u}" for u in units}
    assert unit_routing_keys("video/job", units, 2) == keys  # deterministic
