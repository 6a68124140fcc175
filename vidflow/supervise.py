"""The app processes of ``vidflow up`` under supervisord: config, daemon, XML-RPC, restart counts.

supervisord (from PyPI) restarts whatever exits (``autorestart``); its state, pid and start time
come from its XML-RPC interface on a unix socket under ``VIDFLOW_HOME/run``. supervisord keeps no
restart count, so :func:`restart_counts` counts each program's ``spawned:`` lines in
supervisord's own log since its latest start (one spawn is the first start; each further one is
a restart). Every program is started through :mod:`vidflow.supervise_exec`, which reads the
program's argv and environment from a 0600 file (no Kafka password in the config, no
quoting of arguments) and pauses a little
longer than ``startsecs`` so supervisord's linearly growing backoff never builds up and FATAL is
never reached while a service is away (``startretries`` is high as well).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import subprocess
import sys
import time
import xmlrpc.client
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from supervisor.xmlrpc import SupervisorTransport  # type: ignore[import-untyped]

from core.errors import public_reason
from core.logs import get_logger
from vidflow.stack import StackError
from vidflow.stack.process import tail

__all__ = [
    "Program",
    "ProgramState",
    "SupervisorPaths",
    "apply_config",
    "call",
    "program_states",
    "render_config",
    "restart_counts",
    "rpc",
    "shutdown",
    "supervisor_running",
]

START_SECONDS = 1  # up this long = started; supervise_exec pauses longer, so every try counts
START_RETRIES = 1_000_000  # never FATAL in practice (see the module docstring)
STOP_WAIT_SECONDS = 30  # SIGTERM, then SIGKILL to the whole group after this long

logger = get_logger(__name__)


@dataclass(frozen=True)
class Program:
    """One supervised process: its name, its argv and its full environment."""

    name: str
    argv: Sequence[str]
    env: dict[str, str]
    stop_signal: str = "TERM"  # then SIGKILL to its group after STOP_WAIT_SECONDS


@dataclass(frozen=True)
class ProgramState:
    """What ``vidflow status`` shows of one program."""

    name: str
    state: str
    pid: int
    uptime_seconds: int
    restarts: int


@dataclass(frozen=True)
class SupervisorPaths:
    """Where supervisord's files live under ``VIDFLOW_HOME``."""

    home: Path

    @property
    def config(self) -> Path:
        return self.home / "supervisor" / "supervisord.conf"

    @property
    def socket(self) -> Path:
        return self.home / "run" / "supervisor.sock"

    @property
    def pidfile(self) -> Path:
        return self.home / "run" / "supervisord.pid"

    @property
    def log(self) -> Path:
        return self.home / "logs" / "supervisord.log"

    def spec_file(self, name: str) -> Path:
        """A program's argv and environment (0600: it holds its Kafka password)."""
        return self.home / "supervisor" / "programs" / f"{name}.json"

    def program_log(self, name: str) -> Path:
        return self.home / "logs" / f"{name}.log"


def _value(text: str) -> str:
    """A config value: supervisord expands ``%(name)s``, so a literal ``%`` is doubled."""
    return text.replace("%", "%%")


def render_config(paths: SupervisorPaths, programs: Sequence[Program], directory: Path) -> str:
    """supervisord's config: the daemon on a private unix socket, one ``[program:x]`` each."""
    sections = [
        f"[unix_http_server]\nfile={_value(str(paths.socket))}\nchmod=0700\n",
        "[supervisord]\n"
        f"logfile={_value(str(paths.log))}\n"
        f"pidfile={_value(str(paths.pidfile))}\n"
        f"childlogdir={_value(str(paths.log.parent))}\n"
        f"directory={_value(str(directory))}\n"
        "identifier=vidflow\n",
        "[rpcinterface:supervisor]\n"
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n",
        f"[supervisorctl]\nserverurl=unix://{_value(str(paths.socket))}\n",
    ]
    for program in programs:
        # the program's argv lives in its spec file beside its environment: no quoting here
        argv = [sys.executable, "-m", "vidflow.supervise_exec", str(paths.spec_file(program.name))]
        command = " ".join(shlex.quote(a) for a in argv)
        log = _value(str(paths.program_log(program.name)))
        sections.append(
            f"[program:{program.name}]\n"
            f"command={_value(command)}\n"
            f"directory={_value(str(directory))}\n"
            "autostart=true\nautorestart=true\n"
            f"startsecs={START_SECONDS}\nstartretries={START_RETRIES}\n"
            f"stopsignal={program.stop_signal}\nstopwaitsecs={STOP_WAIT_SECONDS}\n"
            "stopasgroup=true\nkillasgroup=true\n"
            "redirect_stderr=true\n"
            f"stdout_logfile={log}\nstdout_logfile_maxbytes=20MB\nstdout_logfile_backups=3\n"
        )
    return "\n".join(sections)


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)


@contextlib.contextmanager
def rpc(paths: SupervisorPaths) -> Iterator[Any]:
    """An XML-RPC client of the running supervisord over its unix socket, closed after use;
    its answers are untyped dicts, hence ``Any``."""
    transport = SupervisorTransport(None, None, f"unix://{paths.socket}")
    proxy = xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport)
    try:
        yield proxy.supervisor
    finally:
        transport.close()


def call(paths: SupervisorPaths, method: str, *args: Any) -> Any:
    """One XML-RPC call of supervisord's ``supervisor.<method>``."""
    with rpc(paths) as server:
        return getattr(server, method)(*args)


def supervisor_running(paths: SupervisorPaths) -> bool:
    """Whether a supervisord answers on the socket."""
    if not paths.socket.exists():
        return False
    try:
        return bool(call(paths, "getState")["statename"] == "RUNNING")
    except (OSError, xmlrpc.client.Fault, xmlrpc.client.ProtocolError):
        return False


def apply_config(paths: SupervisorPaths, programs: Sequence[Program], directory: Path) -> None:
    """Write the config and environments, then start supervisord, or make a running one take
    the new config (programs added, removed or changed are started, stopped or restarted)."""
    for program in programs:
        spec = {"argv": list(program.argv), "env": program.env}
        _write_private(paths.spec_file(program.name), json.dumps(spec))
    _write_private(paths.config, render_config(paths, programs, directory))
    for folder in (paths.socket.parent, paths.log.parent):
        folder.mkdir(parents=True, exist_ok=True)
    if not supervisor_running(paths):
        subprocess.run(
            [sys.executable, "-m", "supervisor.supervisord", "-c", str(paths.config)],
            check=True,
            cwd=directory,
        )
        _wait_for(lambda: supervisor_running(paths), 20, "supervisord did not start", paths.log)
        return
    with rpc(paths) as server:
        [[added, changed, removed]] = server.reloadConfig()
        for name in [*changed, *removed]:
            with contextlib.suppress(xmlrpc.client.Fault):
                server.stopProcessGroup(name)
            server.removeProcessGroup(name)
        for name in [*changed, *added]:
            server.addProcessGroup(name)
        for info in server.getAllProcessInfo():
            with contextlib.suppress(xmlrpc.client.Fault):  # already started
                server.startProcess(info["name"], False)


def _wait_for(check: Callable[[], bool], timeout: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    logger.error(what, log_tail=tail(log))
    raise StackError(public_reason(f"{what} (`vidflow logs supervisord` shows why)"))


_SPAWNED = re.compile(r"spawned: '([^']+)' with pid")


def restart_counts(paths: SupervisorPaths) -> dict[str, int]:
    """Restarts per program since supervisord's latest start, from its log's ``spawned:`` lines."""
    try:
        text = paths.log.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return {}
    text = text[text.rfind("supervisord started with pid") :]
    spawns: dict[str, int] = {}
    for name in _SPAWNED.findall(text):
        spawns[name] = spawns.get(name, 0) + 1
    return {name: count - 1 for name, count in spawns.items()}


def program_states(paths: SupervisorPaths) -> list[ProgramState]:
    """Every program's state, pid, uptime and restarts (empty when supervisord is not running)."""
    if not supervisor_running(paths):
        return []
    infos = call(paths, "getAllProcessInfo")
    restarts = restart_counts(paths)
    states = []
    for info in infos:
        running = info["statename"] == "RUNNING"
        uptime = int(info["now"]) - int(info["start"]) if running else 0
        name = str(info["name"])
        states.append(
            ProgramState(
                name, str(info["statename"]), int(info["pid"]), uptime, restarts.get(name, 0)
            )
        )
    return states


def shutdown(paths: SupervisorPaths, timeout: float = STOP_WAIT_SECONDS + 30) -> list[str]:
    """Stop every program gracefully (SIGTERM, SIGKILL after ``stopwaitsecs``), then supervisord;
    the names of the programs that were running."""
    if not supervisor_running(paths):
        return []
    names = [s.name for s in program_states(paths) if s.state in {"RUNNING", "STARTING", "BACKOFF"}]
    pid = int(call(paths, "getPID"))
    call(paths, "stopAllProcesses", True)  # each SIGTERM, then SIGKILL after stopwaitsecs
    with contextlib.suppress(OSError, xmlrpc.client.Fault, xmlrpc.client.ProtocolError):
        call(paths, "shutdown")

    def gone() -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False

    _wait_for(gone, timeout, "supervisord did not stop", paths.log)
    return names


def running_program(home: Path, name: str) -> int | None:
    """The pid of program ``name`` while supervisord runs it (or is starting it), else None:
    what commands that must not run beside a process (a flow's rerun, a rebuild) ask."""
    for program in program_states(SupervisorPaths(home)):
        if program.name == name and program.state in ("RUNNING", "STARTING", "BACKOFF"):
            return program.pid or -1
    return None
