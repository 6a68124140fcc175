"""One FFmpeg child process, followed without blocking: progress, exit, stall, kill.

Children die with their worker (``PR_SET_PDEATHSIG``), so a killed flow leaves no orphan
encodes; a resumed flow starts the units that were running again.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import time
from functools import partial
from pathlib import Path

from dataflows.transcode.progress import ProgressParser, ProgressReading

__all__ = ["ChildTask", "FFmpegRun", "classify_failure"]

_PR_SET_PDEATHSIG = 1
_SIGKILL = int(signal.SIGKILL)
# The input itself is the problem: retrying cannot help.
_DETERMINISTIC = (
    "invalid data found when processing input",
    "moov atom not found",
    "does not contain any stream",
    "could not find codec parameters",
    "decoder (codec",
    "404 not found",
    "403 forbidden",
)
# The way to the input (or the output) failed: the object store may be restarting, the network
# may come back. These win over the markers above: FFmpeg reports a refused connection as
# "Error opening input: Connection refused", which says nothing about the input's bytes.
_TRANSIENT = (
    "connection refused",
    "connection reset",
    "connection timed out",
    "timed out",
    "network is unreachable",
    "host is unreachable",
    "no route to host",
    "broken pipe",
    "temporary failure in name resolution",
    "resource temporarily unavailable",
    "input/output error",
    "500 internal server error",
    "502 bad gateway",
    "503 service unavailable",
    "504 gateway timeout",
)

# Loaded once at import: the function a forked child calls before exec must not load a library
# (dlopen takes locks another thread of the multi-threaded parent may hold at the fork).
_LIBC = ctypes.CDLL("libc.so.6", use_errno=True)
_PRCTL = _LIBC.prctl
_PRCTL.argtypes = [ctypes.c_int, ctypes.c_ulong]
_PRCTL.restype = ctypes.c_int


def _die_with_parent(nice: int = 0) -> None:
    _PRCTL(_PR_SET_PDEATHSIG, _SIGKILL)
    if nice > 0:
        os.nice(nice)


def classify_failure(returncode: int, stderr: str, killed: bool) -> str:
    """``"transient"`` (worth a retry) or ``"deterministic"`` (the input is the problem).

    Anything unrecognised is transient: a retry too many costs an encode, a retry too few
    loses a job to a passing outage.
    """
    if killed or returncode < 0:
        return "transient"
    text = stderr.lower()
    if any(marker in text for marker in _TRANSIENT):
        return "transient"
    if any(marker in text for marker in _DETERMINISTIC):
        return "deterministic"
    return "transient"


class FFmpegRun:
    """A running FFmpeg whose ``-progress pipe:1`` output is read as it comes."""

    def __init__(self, argv: list[str], duration: float, log: Path, nice: int = 0) -> None:
        log.parent.mkdir(parents=True, exist_ok=True)
        self.log = log
        self._stderr = log.open("wb")
        self.process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            preexec_fn=partial(_die_with_parent, nice),
        )
        assert self.process.stdout is not None
        os.set_blocking(self.process.stdout.fileno(), False)
        self.parser = ProgressParser(duration)
        self.started = time.monotonic()
        self.last_progress = self.started
        self.last_out_seconds = -1.0
        self.killed = False

    def readings(self) -> list[ProgressReading]:
        """Progress blocks that arrived since the last call (never blocks)."""
        assert self.process.stdout is not None
        try:
            chunk = self.process.stdout.read()
        except BlockingIOError:
            chunk = None
        if not chunk:
            return []
        readings = self.parser.feed(chunk.decode("utf-8", "replace"))
        for reading in readings:
            if reading.out_seconds > self.last_out_seconds:
                self.last_out_seconds = reading.out_seconds
                self.last_progress = time.monotonic()
        return readings

    def stalled_for(self) -> float:
        """Seconds since the output last moved forward."""
        return time.monotonic() - self.last_progress

    def exit_code(self) -> int | None:
        """The exit code once finished."""
        return self.process.poll()

    def stderr_tail(self, limit: int = 2000) -> str:
        """The end of FFmpeg's error output, for the failure reason."""
        if not self._stderr.closed:
            self._stderr.flush()
        try:
            return self.log.read_text(errors="replace")[-limit:].strip()
        except FileNotFoundError:
            return ""

    def kill(self) -> int:
        """Stop it now (SIGKILL also ends a process stopped with SIGSTOP); the exit code."""
        self.killed = True
        if self.process.poll() is None:
            self.process.kill()
        code = self.process.wait(5)
        self.close()
        return code

    def close(self) -> None:
        """Release the pipes and the log file (idempotent)."""
        if self.process.stdout is not None and not self.process.stdout.closed:
            self.process.stdout.close()
        self._stderr.close()


class ChildTask:
    """A Python child (``python -m dataflows.transcode.tasks``) followed without blocking.

    Used for the work around an encode that would otherwise hold a worker: the HLS remux and
    uploads of a finished unit, and the poster and sprite of a finished job.
    """

    def __init__(self, argv: list[str], log: Path, deadline: float) -> None:
        log.parent.mkdir(parents=True, exist_ok=True)
        self.log = log
        self.deadline = deadline
        with log.open("wb") as stderr:
            self.process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=stderr,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,
            )
        self.started = time.monotonic()

    def exit_code(self) -> int | None:
        return self.process.poll()

    def overdue(self) -> bool:
        """Still running after ``deadline`` seconds: hung (a stopped process, a dead socket)."""
        return self.process.poll() is None and time.monotonic() - self.started > self.deadline

    def output_tail(self, limit: int = 2000) -> str:
        try:
            return self.log.read_text(errors="replace")[-limit:].strip()
        except FileNotFoundError:
            return ""

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(5)
