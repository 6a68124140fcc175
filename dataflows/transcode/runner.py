"""One FFmpeg encode, followed without blocking: progress, exit, stall, kill.

The process itself is a :class:`dataflows.children.Child` (niceness, dies with its worker, so a
killed flow leaves no orphan encodes; a resumed flow starts the units that were running again);
its deadline is the stall timeout, counted from the last time the encoded position moved.
"""

from __future__ import annotations

from pathlib import Path

from dataflows.children import Child
from dataflows.transcode.progress import ProgressParser, ProgressReading

__all__ = ["NEAR_END_SECONDS", "FFmpegRun", "classify_failure"]

NEAR_END_SECONDS = 3.0  # of the source left: the step looks for FFmpeg's exit urgently

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

    def __init__(
        self, argv: list[str], duration: float, log: Path, nice: int = 0,
        stall_timeout: float = float("inf"),
    ) -> None:  # fmt: skip
        self.child = Child(argv, log, deadline=stall_timeout, nice=nice, pipe_stdout=True)
        self.parser = ProgressParser(duration)
        self.started = self.child.started
        self.last_out_seconds = -1.0

    @property
    def killed(self) -> bool:
        return self.child.killed

    def readings(self) -> list[ProgressReading]:
        """Progress blocks that arrived since the last call (never blocks)."""
        stdout = self.child.stdout
        assert stdout is not None
        try:
            chunk = stdout.read()
        except BlockingIOError:
            chunk = None
        if not chunk:
            return []
        readings = self.parser.feed(chunk.decode("utf-8", "replace"))
        for reading in readings:
            if reading.out_seconds > self.last_out_seconds:
                self.last_out_seconds = reading.out_seconds
                self.child.alive()
        return readings

    def near_end(self) -> bool:
        """Whether FFmpeg reported at most ``NEAR_END_SECONDS`` of the source left to encode:
        its exit, which starts the publishing on the way to the job's end, is near."""
        return self.parser.duration - self.last_out_seconds <= NEAR_END_SECONDS

    def stalled_for(self) -> float:
        """Seconds since the output last moved forward."""
        return self.child.quiet_for()

    def stalled(self) -> bool:
        """Running, with no progress for longer than the stall timeout."""
        return self.child.overdue()

    def exit_code(self) -> int | None:
        """The exit code once finished."""
        return self.child.exit_code()

    def stderr_tail(self, limit: int = 2000) -> str:
        """The end of FFmpeg's error output, for the failure reason."""
        return self.child.output_tail(limit)

    def kill(self) -> int:
        """Stop it now (SIGKILL also ends a process stopped with SIGSTOP); the exit code."""
        return self.child.cancel()

    def close(self) -> None:
        """Release the pipe and the log file (idempotent)."""
        self.child.close()
