"""Child processes a Bytewax worker starts and then polls, never awaits.

A worker thread runs every key of its steps: one that waits for a child (an FFmpeg encode, the
uploads of a finished unit, a poster) stalls every other key and every snapshot of the worker.
So work that takes long runs in a child this module supervises, and the step polls it from its
``on_notify`` timer:

- :class:`Child`: one process, started with a niceness and ``PR_SET_PDEATHSIG`` (it dies with
  its worker, so a killed flow leaves no orphan; a resumed flow starts it again), polled for its
  exit, killed past its deadline (counted from its start, or from its last sign of life for a
  child that reports progress) or on cancel.
- :class:`SpecTask`: the protocol of a Python child: the parent writes a spec (JSON), the child
  (``python -m MODULE SPEC RESULT``, whose ``main`` is :func:`serve`) writes its result (JSON,
  atomically) or one public line (:func:`core.errors.public_reason`) beside it; :meth:`poll`
  gives ``None`` while it runs, then :class:`Finished` or :class:`Failed`.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import IO, Any, Generic, TypeVar

import msgspec

from core.errors import public_reason

__all__ = ["Child", "Failed", "Finished", "SpecTask", "serve"]

R = TypeVar("R")

_PR_SET_PDEATHSIG = 1
_SIGKILL = int(signal.SIGKILL)
KILL_WAIT = 5.0  # seconds to reap a SIGKILLed child (it cannot ignore the signal)
SPEC_WAIT = 3600.0  # a warm child given no spec within this ends (its parent kills it sooner)
# How often a warm child looks for its spec. It waits through whole encodes: every 0.05 s costs
# ~0.002 CPU-s a second, every 0.01 s took five times that from FFmpeg.
SPEC_POLL = 0.05

# Loaded once at import: the function a forked child calls before exec must not load a library
# (dlopen takes locks another thread of the multi-threaded parent may hold at the fork).
_LIBC = ctypes.CDLL("libc.so.6", use_errno=True)
_PRCTL = _LIBC.prctl
_PRCTL.argtypes = [ctypes.c_int, ctypes.c_ulong]
_PRCTL.restype = ctypes.c_int


def _die_with_parent(nice: int) -> None:
    """Runs in the forked child before exec: SIGKILL when the parent dies, then lower priority."""
    _PRCTL(_PR_SET_PDEATHSIG, _SIGKILL)
    if nice > 0:
        os.nice(nice)


class Child:
    """One supervised child process: started, polled, killed past its deadline or on cancel.

    Its stderr (and stdout unless ``pipe_stdout``) goes to ``log``, the operator's detail;
    ``pipe_stdout`` gives a non-blocking pipe for a child that reports progress on stdout.
    """

    def __init__(
        self,
        argv: list[str],
        log: Path,
        *,
        deadline: float = float("inf"),
        nice: int = 0,
        pipe_stdout: bool = False,
        env: Mapping[str, str] | None = None,
    ) -> None:
        log.parent.mkdir(parents=True, exist_ok=True)
        self.log = log
        self.deadline = deadline
        self._output = log.open("wb")
        try:
            self.process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE if pipe_stdout else self._output,
                stderr=self._output,
                preexec_fn=partial(_die_with_parent, nice),
                env=dict(env) if env is not None else None,
            )
        except BaseException:  # a missing binary, a failed fork: no log file left open
            self._output.close()
            raise
        if self.process.stdout is not None:
            os.set_blocking(self.process.stdout.fileno(), False)
        self.started = self.alive_at = time.monotonic()
        self.killed = False

    @property
    def stdout(self) -> IO[bytes] | None:
        """The progress pipe (non-blocking), when started with ``pipe_stdout``."""
        return self.process.stdout

    def exit_code(self) -> int | None:
        """The exit code once finished, else None (never blocks)."""
        return self.process.poll()

    def renice(self, nice: int) -> None:
        """Lower its priority to ``nice`` now: every thread of it (Linux nices threads one by
        one; FFmpeg's encoder threads were started at the old niceness). Best effort: a thread
        that just ended is skipped."""
        try:
            threads = [int(t.name) for t in Path(f"/proc/{self.process.pid}/task").iterdir()]
        except OSError:  # it has ended
            return
        for tid in threads:
            try:
                os.setpriority(os.PRIO_PROCESS, tid, nice)
            except OSError:
                continue

    def alive(self) -> None:
        """The child showed progress: its deadline counts from now."""
        self.alive_at = time.monotonic()

    def quiet_for(self) -> float:
        """Seconds since it started or last showed progress."""
        return time.monotonic() - self.alive_at

    def overdue(self) -> bool:
        """Still running ``deadline`` seconds after its start or its last progress: hung (a
        stopped process, a dead socket, a stalled encode)."""
        return self.process.poll() is None and self.quiet_for() > self.deadline

    def output_tail(self, limit: int = 2000) -> str:
        """The end of its log, for the operator (never shown to users as it is)."""
        if not self._output.closed:
            self._output.flush()
        try:
            return self.log.read_text(errors="replace")[-limit:].strip()
        except FileNotFoundError:
            return ""

    def cancel(self) -> int:
        """Stop it now (SIGKILL also ends a process stopped with SIGSTOP) and reap it; the exit
        code (idempotent: a finished child keeps its own)."""
        if self.process.poll() is None:
            self.killed = True
            self.process.kill()
        code = self.process.wait(KILL_WAIT)
        self.close()
        return code

    def close(self) -> None:
        """Release the pipe and the log file (idempotent)."""
        if self.process.stdout is not None and not self.process.stdout.closed:
            self.process.stdout.close()
        self._output.close()


@dataclass(frozen=True)
class Finished(Generic[R]):
    """The child did its work: its decoded result."""

    result: R


@dataclass(frozen=True)
class Failed:
    """The child failed or hung: ``reason`` is public (one line), ``detail`` is for the log."""

    reason: str
    detail: str = ""
    hung: bool = False


def _failure_path(result: Path) -> Path:
    return result.with_suffix(".failed")


class SpecTask(Generic[R]):
    """A Python child that does one spec: ``python -m MODULE DIR/NAME.json DIR/NAME.result``.

    ``what`` names the work for users ("publishing failed"); the result is decoded as
    ``result_type``. Any file of an earlier run under the same name is removed first, so a
    stale result is never read as this run's.
    """

    def __init__(
        self,
        module: str,
        spec: msgspec.Struct | None,
        workdir: Path,
        name: str,
        result_type: type[R],
        *,
        what: str,
        deadline: float,
        nice: int = 0,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.what = what
        self.result_type = result_type
        self.spec_path = workdir / f"{name}.json"
        self.result_path = workdir / f"{name}.result"
        workdir.mkdir(parents=True, exist_ok=True)
        for stale in (self.result_path, _failure_path(self.result_path), self.spec_path):
            stale.unlink(missing_ok=True)
        self.submitted = spec is not None  # None: a warm child, waiting for :meth:`submit`
        if spec is not None:
            self.spec_path.write_bytes(msgspec.json.encode(spec))
        argv = [sys.executable, "-m", module, str(self.spec_path), str(self.result_path)]
        self.child = Child(argv, workdir / f"{name}.log", deadline=deadline, nice=nice, env=env)

    def submit(self, spec: msgspec.Struct) -> bool:
        """Hand a warm child (started with no spec: Python up, its imports loaded) its spec, so
        the work starts without a child's start-up; False when it is gone (start another)."""
        if self.submitted or self.child.exit_code() is not None:
            return False
        _write_atomically(self.spec_path, msgspec.json.encode(spec))
        self.submitted = True
        self.child.alive()  # its deadline counts from its work, not from its wait
        return True

    def poll(self) -> Finished[R] | Failed | None:
        """None while it runs (or waits for its spec); then its result, or why it failed (a hung
        child is killed)."""
        child = self.child
        if not self.submitted:
            return None
        code = child.exit_code()
        if code is None:
            if not child.overdue():
                return None
            child.cancel()
            hung = f"did not finish in {child.deadline:.0f}s; killed"
            return Failed(public_reason(self.what, hung), hung=True)
        child.close()
        if code != 0:
            reason = self.failure() or public_reason(self.what, f"exit code {code}")
            return Failed(reason, child.output_tail())
        try:
            data = self.result_path.read_bytes()
            return Finished(msgspec.json.decode(data, type=self.result_type))
        except (OSError, msgspec.DecodeError) as exc:  # exit 0 without a readable result
            return Failed(public_reason(self.what, "no result"), repr(exc))

    def failure(self) -> str:
        """The one public line a failed child left beside its result ("" if none)."""
        try:
            return _failure_path(self.result_path).read_text(errors="replace").strip()
        except FileNotFoundError:
            return ""

    def cancel(self) -> None:
        """Kill it now (idempotent)."""
        self.child.cancel()


def _wait_for(path: Path, seconds: float) -> bool:
    """Whether ``path`` exists, or comes within ``seconds`` (a warm child's spec: written
    atomically, so once it is there it is whole)."""
    deadline = time.monotonic() + seconds
    while not path.exists():
        if time.monotonic() > deadline:
            return False
        time.sleep(SPEC_POLL)
    return True


def _write_atomically(path: Path, data: bytes) -> None:
    partial_path = path.with_suffix(path.suffix + ".partial")
    partial_path.write_bytes(data)
    partial_path.replace(path)


def serve(
    argv: list[str],
    spec_type: Any,
    run: Callable[[Any], msgspec.Struct],
    what: Callable[[Any], str],
) -> int:
    """A child's ``main``: decode the spec at ``argv[0]`` as ``spec_type``, ``run`` it, write
    the result to ``argv[1]``; on failure the traceback goes to stderr (the task's log, for the
    operator) and one public line (``what(spec)`` + the scrubbed error) beside the result."""
    spec_path, result_path = Path(argv[0]), Path(argv[1])
    failure = _failure_path(result_path)
    failure.unlink(missing_ok=True)
    if not _wait_for(spec_path, SPEC_WAIT):  # a warm child nobody handed work: nothing to do
        return 0
    spec = msgspec.json.decode(spec_path.read_bytes(), type=spec_type)
    try:
        result = run(spec)
    except Exception as exc:  # noqa: BLE001 - reported as a reason, the detail logged
        traceback.print_exc()
        _write_atomically(failure, public_reason(what(spec), exc).encode())
        return 1
    _write_atomically(result_path, msgspec.json.encode(result))
    return 0
