"""The cluster a transcode flow runs on, the unit mode that suits it, and unit routing (pure).

``python -m bytewax.run`` parses ``-w``/``-i``/``-a`` (or ``BYTEWAX_WORKERS_PER_PROCESS``,
``BYTEWAX_PROCESS_ID``, ``BYTEWAX_ADDRESSES``, ``BYTEWAX_HOSTFILE_PATH``) in its ``__main__``
*before* it imports the flow module, but keeps the result to itself; the flow module reads the
same flags from ``sys.argv`` and the same variables, exactly as ``bytewax/run.py`` (v0.21.1)
does, to learn how many processes and workers it will run on.

A stateful step sends a key to ``sorted(workers)[siphash13(key) % worker_count]``: Rust's
``DefaultHasher`` (SipHash-1-3, zero keys) over the key's UTF-8 bytes and a ``0xff`` terminator
(``src/operators.rs`` and ``PartitionOp`` in ``src/timely.rs`` of bytewax v0.21.1). Timely
numbers workers process by process, so worker ``i`` lives in process ``i // workers_per_process``.
Unit routing keys get a small salt so that the units of one video land on different workers;
were the hash ever to change, units would still run, only less evenly spread.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

__all__ = [
    "ClusterShape",
    "UnitMode",
    "choose_unit_mode",
    "cluster_shape",
    "siphash13",
    "unit_routing_keys",
    "worker_for",
]

UnitMode = Literal["rung", "ladder"]
_MASK = (1 << 64) - 1


@dataclass(frozen=True)
class ClusterShape:
    """How many processes and workers a flow runs on, and which process this is."""

    processes: int = 1
    workers_per_process: int = 1
    process_id: int = 0

    @property
    def workers(self) -> int:
        return self.processes * self.workers_per_process


def _flag(argv: Sequence[str], short: str, long: str) -> str | None:
    value: str | None = None
    for i, arg in enumerate(argv):
        if arg in (short, long) and i + 1 < len(argv):
            value = argv[i + 1]
        elif arg.startswith(long + "="):
            value = arg.split("=", 1)[1]
        elif arg.startswith(short) and len(arg) > len(short) and not arg.startswith("--"):
            value = arg[len(short) :]
    return value


def cluster_shape(argv: Sequence[str], environ: Mapping[str, str]) -> ClusterShape:
    """The shape ``python -m bytewax.run`` was asked for (flags win over variables)."""
    workers = _flag(argv, "-w", "--workers-per-process") or environ.get(
        "BYTEWAX_WORKERS_PER_PROCESS"
    )
    process = _flag(argv, "-i", "--process-id") or environ.get("BYTEWAX_PROCESS_ID")
    addresses = _flag(argv, "-a", "--addresses") or environ.get("BYTEWAX_ADDRESSES")
    if process is None and "BYTEWAX_POD_NAME" in environ and "BYTEWAX_STATEFULSET_NAME" in environ:
        process = environ["BYTEWAX_POD_NAME"].replace(environ["BYTEWAX_STATEFULSET_NAME"] + "-", "")
    processes = 1
    if process is not None:
        if addresses is not None:
            processes = len([a for a in addresses.split(";") if a.strip()])
        elif "BYTEWAX_HOSTFILE_PATH" in environ:
            with Path(environ["BYTEWAX_HOSTFILE_PATH"]).open() as hostfile:
                processes = len([line for line in hostfile if line.strip()])
    return ClusterShape(
        processes=max(1, processes),
        workers_per_process=max(1, int(workers or 1)),
        process_id=int(process or 0),
    )


def choose_unit_mode(setting: str, shape: ClusterShape, cpus: int | None = None) -> UnitMode:
    """``rung`` or ``ladder`` for the ``unit_mode`` setting (``auto`` decides from the cluster).

    One FFmpeg already spreads its encoders over every core of a machine, so on one process a
    single decode split into the rungs finishes the ladder soonest: more runs would only decode
    the source again. With several processes (machines) the rungs run side by side and the ladder
    takes as long as its slowest rung, so one rung per unit wins. One process with many workers on
    a big machine (16 cores or more per worker pair) is the other case where rungs win: one
    FFmpeg's filter graph stops keeping that many cores busy.
    """
    if setting in ("rung", "ladder"):
        return setting  # type: ignore[return-value]
    if shape.processes > 1:
        return "rung"
    cores = cpus if cpus is not None else (os.cpu_count() or 1)
    if shape.workers_per_process > 1 and cores >= 8 * shape.workers_per_process:
        return "rung"
    return "ladder"


def _rotl(x: int, b: int) -> int:
    return ((x << b) | (x >> (64 - b))) & _MASK


def siphash13(data: bytes, k0: int = 0, k1: int = 0) -> int:
    """SipHash-1-3 (Rust's ``DefaultHasher``), 64-bit."""
    v0, v1 = k0 ^ 0x736F6D6570736575, k1 ^ 0x646F72616E646F6D
    v2, v3 = k0 ^ 0x6C7967656E657261, k1 ^ 0x7465646279746573

    def rounds(v0: int, v1: int, v2: int, v3: int, n: int) -> tuple[int, int, int, int]:
        for _ in range(n):
            v0 = (v0 + v1) & _MASK
            v1 = _rotl(v1, 13) ^ v0
            v0 = _rotl(v0, 32)
            v2 = (v2 + v3) & _MASK
            v3 = _rotl(v3, 16) ^ v2
            v0 = (v0 + v3) & _MASK
            v3 = _rotl(v3, 21) ^ v0
            v2 = (v2 + v1) & _MASK
            v1 = _rotl(v1, 17) ^ v2
            v2 = _rotl(v2, 32)
        return v0, v1, v2, v3

    whole = len(data) - len(data) % 8
    for i in range(0, whole, 8):
        m = int.from_bytes(data[i : i + 8], "little")
        v3 ^= m
        v0, v1, v2, v3 = rounds(v0, v1, v2, v3, 1)
        v0 ^= m
    tail = int.from_bytes(data[whole:], "little") | ((len(data) & 0xFF) << 56)
    v3 ^= tail
    v0, v1, v2, v3 = rounds(v0, v1, v2, v3, 1)
    v0 ^= tail
    v2 ^= 0xFF
    v0, v1, v2, v3 = rounds(v0, v1, v2, v3, 3)
    return v0 ^ v1 ^ v2 ^ v3


def worker_for(key: str, workers: int) -> int:
    """The worker index a Bytewax stateful step sends ``key`` to."""
    return siphash13(key.encode() + b"\xff") % max(1, workers)


def unit_routing_keys(base: str, unit_ids: Sequence[str], workers: int) -> dict[str, str]:
    """A routing key per unit, the units of one job going round the workers in turn.

    The first unit goes where ``base`` (video/job) hashes, so different videos start on
    different workers; ``#n`` salts are added until a key lands on the wanted worker.
    """
    start = worker_for(base, workers)
    keys: dict[str, str] = {}
    for i, unit in enumerate(unit_ids):
        wanted = (start + i) % max(1, workers)
        key = f"{base}/{unit}"
        for salt in range(64 * max(1, workers)):
            candidate = key if salt == 0 else f"{key}#{salt}"
            if worker_for(candidate, workers) == wanted:
                key = candidate
                break
        keys[unit] = key
    return keys
