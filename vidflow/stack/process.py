"""Detached service processes: start with a pid file and a log, tell if alive, stop gracefully."""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import os
import pwd
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

__all__ = [
    "exclusive",
    "port_in_use",
    "read_pid",
    "running_pid",
    "start_detached",
    "stop_pidfile",
    "tail",
]

# Services started by this process stay our children until it exits; keeping their Popen
# objects lets us reap them (no zombies) and keeps Popen.__del__ from warning they still run.
_children: dict[int, subprocess.Popen[bytes]] = {}


@atexit.register
def _release_children() -> None:
    """Services outlive the process that started them, by design: disown them on exit, so
    ``Popen.__del__`` neither warns that they still run nor queues them to be reaped."""
    for child in _children.values():
        if child.poll() is None:
            child.returncode = 0
    _children.clear()


@contextlib.contextmanager
def exclusive(lockfile: Path) -> Iterator[None]:
    """Hold an advisory lock on ``lockfile``: two ``stack up`` at once (a test run beside
    ``make up``) must not build MinIO twice or start a second Kafka on the same data."""
    lockfile.parent.mkdir(parents=True, exist_ok=True)
    with lockfile.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def read_pid(pidfile: Path) -> int | None:
    """The pid recorded in ``pidfile``, if any."""
    try:
        return int(pidfile.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def _alive(pid: int) -> bool:
    child = _children.get(pid)
    if child is not None:
        return child.poll() is None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie child of ours is not alive for our purposes
    with contextlib.suppress(FileNotFoundError):
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    return True


def running_pid(pidfile: Path) -> int | None:
    """The recorded pid if that process is still running."""
    pid = read_pid(pidfile)
    return pid if pid is not None and _alive(pid) else None


def _demote(user: str | None) -> None:
    if user is None:
        return
    entry = pwd.getpwnam(user)
    os.setgid(entry.pw_gid)
    os.initgroups(user, entry.pw_gid)
    os.setuid(entry.pw_uid)


def start_detached(
    argv: Sequence[str],
    *,
    pidfile: Path,
    log: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    user: str | None = None,
) -> int:
    """Start ``argv`` in its own session so it outlives this CLI; output appends to ``log``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    pidfile.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        out.write(f"\n--- {time.strftime('%Y-%m-%dT%H:%M:%S')} start: {' '.join(argv)}\n".encode())
        out.flush()
        process = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
            preexec_fn=(lambda: _demote(user)) if user else None,
        )
    _children[process.pid] = process
    pidfile.write_text(f"{process.pid}\n")
    return process.pid


def stop_pidfile(pidfile: Path, timeout: float = 20.0) -> bool:
    """SIGTERM the recorded process, SIGKILL it after ``timeout``; True if something was stopped."""
    pid = running_pid(pidfile)
    if pid is None:
        pidfile.unlink(missing_ok=True)
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if _alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
    pidfile.unlink(missing_ok=True)
    return True


def port_in_use(host: str, port: int) -> bool:
    """Whether something already listens on ``host:port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def tail(path: Path, lines: int = 20) -> str:
    """The last ``lines`` lines of a log, for error messages."""
    try:
        content = path.read_bytes()[-64_000:].decode("utf-8", "replace")
    except FileNotFoundError:
        return f"(no log at {path})"
    return "\n".join(content.splitlines()[-lines:])
