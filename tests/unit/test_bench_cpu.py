"""The bench's CPU accounting (bench/cpu.py) on real processes: a flow's descendants are
grouped by what they are and keep their CPU once they have ended, unrelated processes are left
out."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from bench.cpu import CpuSampler, read_proc

BUSY = "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done"


def test_a_flows_children_are_counted_by_group_after_they_end(tmp_path: Path) -> None:
    spec = tmp_path / "publish.json"  # a task child is named by its spec's file
    parent = subprocess.Popen(
        [sys.executable, "-c",
         "import subprocess, sys; subprocess.run(['sh', '-c', sys.argv[1], sys.argv[2]]);"
         " import time; time.sleep(0.5)", BUSY, str(spec)],
    )  # fmt: skip
    outsider = subprocess.Popen(["sh", "-c", BUSY])
    sampler = CpuSampler(parent.pid, period=0.05).start()
    parent.wait(60)
    outsider.wait(60)
    totals = sampler.stop()
    assert totals.get("child_publish", 0.0) > 0.05  # the busy shell, by its argument
    assert "flow" in totals  # the parent itself
    assert set(totals) <= {"flow", "store", "child_publish"}  # no "other_sh": the outsider


def test_read_proc_reads_this_process() -> None:
    me = read_proc(os.getpid())
    assert me is not None and me.cpu > 0 and me.cmdline and me.comm
