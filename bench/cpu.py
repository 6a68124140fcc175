"""CPU seconds of the processes a transcode job uses, read from ``/proc`` (Linux).

On a 2-core machine every CPU-second the flow's own children, MinIO or the flow process spend
is taken from FFmpeg, so the flow's wall time over its bare FFmpeg command is explained by these
figures: FFmpeg's own CPU in the flow against the bare run's (reading the source over HTTP, a
niced encoder), and what everything beside it spends.

:class:`CpuSampler` walks ``/proc`` every ``period`` seconds in a thread and keeps the last
``utime + stime`` seen of each process of interest (by pid and start time, so a reused pid is
another process): the flow process and its descendants, and the object store. A process that
ends between two samples loses at most one period of CPU from the figure.
"""

from __future__ import annotations

import os
import resource
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["CpuSampler", "ProcSample", "children_cpu_seconds", "group_of", "read_proc"]

TICK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class ProcSample:
    """One process as ``/proc`` showed it: who it is and its CPU seconds so far."""

    pid: int
    ppid: int
    start: int  # clock ticks after boot: with the pid, the process's identity
    comm: str
    cmdline: tuple[str, ...]
    cpu: float  # utime + stime, seconds


def read_proc(pid: int, root: Path = Path("/proc")) -> ProcSample | None:
    """The process ``pid`` now (None when it has gone)."""
    try:
        stat = (root / str(pid) / "stat").read_text()
        raw = (root / str(pid) / "cmdline").read_bytes()
    except OSError:
        return None
    # comm is in parentheses and may hold spaces or parentheses: split after the last one
    comm = stat[stat.index("(") + 1 : stat.rindex(")")]
    fields = stat[stat.rindex(")") + 2 :].split()
    ppid, utime, stime, start = int(fields[1]), int(fields[11]), int(fields[12]), int(fields[19])
    cmdline = tuple(part.decode(errors="replace") for part in raw.split(b"\0") if part)
    return ProcSample(pid, ppid, start, comm, cmdline, (utime + stime) / TICK)


def group_of(sample: ProcSample, parents: dict[int, ProcSample], flow_pid: int) -> str:
    """The figure a process counts in: ``ffmpeg_encode`` (the flow's FFmpeg), ``ffmpeg_other``
    (one a child runs: poster, sprite), ``child_<name>`` (a Python task child, by its spec's
    file name: live, publish, master, previews), ``flow`` (the dataflow process), ``store``."""
    if sample.pid == flow_pid:
        return "flow"
    if sample.comm == "minio":
        return "store"
    if sample.comm == "ffmpeg":
        parent = parents.get(sample.ppid)
        return "ffmpeg_encode" if parent is not None and parent.pid == flow_pid else "ffmpeg_other"
    spec = next((part for part in sample.cmdline if part.endswith(".json")), "")
    return f"child_{Path(spec).stem}" if spec else f"other_{sample.comm}"


@dataclass
class CpuSampler:
    """Samples the flow's process tree and the object store until :meth:`stop`."""

    flow_pid: int
    period: float = 0.2
    list_pids: Callable[[], list[int]] = field(
        default=lambda: [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]
    )
    _first: dict[tuple[int, int], float] = field(default_factory=dict)  # at start(), else 0
    _last: dict[tuple[int, int], tuple[str, float]] = field(default_factory=dict)
    seen: dict[str, str] = field(default_factory=dict)  # group -> a command line of it
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def sample(self) -> None:
        """One walk of ``/proc``: the latest CPU of every process of interest."""
        samples = {s.pid: s for s in map(read_proc, self.list_pids()) if s is not None}
        for s in samples.values():
            if s.comm != "minio" and not _descends(s, samples, self.flow_pid):
                continue
            key = (s.pid, s.start)
            self._first.setdefault(key, 0.0 if self._thread is not None else s.cpu)
            group = group_of(s, samples, self.flow_pid)
            known = self._last.get(key)
            if known is not None and not known[0].startswith("other_"):
                group = known[0]  # a zombie (an ended child not reaped yet) has no command line
            self._last[key] = (group, s.cpu)
            self.seen.setdefault(group, " ".join(s.cmdline)[:160])

    def start(self) -> CpuSampler:
        self.sample()  # the baseline of the long-lived ones (flow, store); later ones from 0
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> dict[str, float]:
        """CPU seconds spent since :meth:`start`, by group (see :func:`group_of`)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.sample()
        totals: dict[str, float] = {}
        for key, (group, cpu) in self._last.items():
            totals[group] = totals.get(group, 0.0) + cpu - self._first[key]
        return totals

    def _loop(self) -> None:
        while not self._stop.wait(self.period):
            self.sample()


def _descends(sample: ProcSample, samples: dict[int, ProcSample], ancestor: int) -> bool:
    """Whether ``sample`` is ``ancestor`` or one of its descendants (as seen in this walk)."""
    seen: set[int] = set()
    current: ProcSample | None = sample
    while current is not None and current.pid not in seen:
        if current.pid == ancestor:
            return True
        seen.add(current.pid)
        current = samples.get(current.ppid)
    return False


def children_cpu_seconds() -> float:
    """CPU seconds of this process's waited-for children so far (the bare FFmpeg runs)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime
