"""``vidflow up`` / ``down`` / ``status`` / ``logs``: the whole pipeline on one machine, with
the app processes under supervisord (``vidflow.supervise``), restarted whenever they exit.

The services come from ``vidflow stack``; on top run the dataflows (with Bytewax recovery under
``VIDFLOW_HOME/recovery``), the directory watcher (``VIDFLOW_HOME/watch`` unless directories are
given) and, when present, the projector and the portal. Each writes
``VIDFLOW_HOME/logs/<name>.log``. A new app process (e.g. a webhook sender) is one more
:class:`AppProcess` in :func:`app_processes`.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import click
import msgspec
from rich.console import Console
from rich.table import Table

from core.errors import public_reason
from core.logs import get_logger
from core.settings import Settings, get_settings, settings_environ
from vidflow.stack import StackError, ensure_up, health, init_resources
from vidflow.stack import stop as stop_stack
from vidflow.stack.credentials import stack_login
from vidflow.stack.process import stop_pidfile, tail
from vidflow.supervise import (
    Program,
    SupervisorPaths,
    apply_config,
    program_states,
    shutdown,
)
from vidflow.supervise_exec import START_PAUSE_SECONDS

__all__ = [
    "AppProcess",
    "app_processes",
    "down_command",
    "ensure_portal_login",
    "logs_command",
    "process_environ",
    "start_pipeline",
    "status_command",
    "up_command",
]

console = Console(stderr=True)
log = get_logger(__name__)
SNAPSHOT_SECONDS = "5"


@dataclass(frozen=True)
class AppProcess:
    """One long-running vidflow process, and the Kafka principal it logs in as (the broker's
    ACLs hold each to its own topics: ``vidflow.stack.acls``)."""

    name: str
    argv: list[str]
    url: str = ""
    principal: str = ""
    # Bytewax 0.21 stops cleanly on SIGINT (in-flight steps finish; it resumes from its last
    # snapshot, taken every SNAPSHOT_SECONDS); SIGTERM would end it without that
    stop_signal: str = "TERM"


def _flow(name: str, module: str, home: Path) -> AppProcess:
    recovery = home / "recovery" / name
    return AppProcess(
        name,
        [sys.executable, "-m", "bytewax.run", f"{module}:flow", "-r", str(recovery),
         "-s", SNAPSHOT_SECONDS, "-b", "30"],
        principal=name,
        stop_signal="INT",
    )  # fmt: skip


def app_processes(settings: Settings, watch_dirs: list[Path]) -> list[AppProcess]:
    """What ``up`` runs, for the parts this installation has."""
    home = Path(settings.home).resolve()
    m = settings.metrics
    processes = [_flow("ingest", "dataflows.ingest_flow", home)]
    if importlib.util.find_spec("dataflows.transcode_flow") is not None:
        processes.append(_flow("transcode", "dataflows.transcode_flow", home))
    processes.append(
        AppProcess(
            "watcher",
            [sys.executable, "-m", "vidflow", "watch", *map(str, watch_dirs)],
            url=f"http://127.0.0.1:{m.watcher_port}/metrics",
            principal="watcher",
        )
    )
    if importlib.util.find_spec("portal.app") is not None:
        portal = settings.portal
        processes += [
            AppProcess(
                "projector",
                [sys.executable, "-m", "vidflow", "portal", "project"],
                principal="portal",
            ),
            AppProcess(
                "webhooks",
                [sys.executable, "-m", "vidflow", "webhooks", "send"],
                principal="portal",
            ),
            AppProcess(
                "portal",
                [sys.executable, "-m", "vidflow", "portal", "serve"],
                url=f"http://{portal.host}:{portal.port}/",
                principal="portal",
            ),
        ]
    return processes


def _prepare_recovery(process: AppProcess) -> None:
    if "-r" not in process.argv:
        return
    recovery = Path(process.argv[process.argv.index("-r") + 1])
    if not recovery.exists():
        recovery.mkdir(parents=True)
        subprocess.run([sys.executable, "-m", "bytewax.recovery", str(recovery), "1"], check=True)


def process_environ(settings: Settings, process: AppProcess) -> dict[str, str]:
    """The environment of one app process: these settings, logged in to the stack's Kafka as
    the process's own principal (unchanged on a stack without logins)."""
    own = stack_login(settings, process.principal, force=True) if process.principal else settings
    env = {**os.environ, **settings_environ(own)}
    env["VIDFLOW_HOME"] = str(Path(settings.home).resolve())
    return env


def start_pipeline(settings: Settings, watch_dirs: list[Path]) -> list[AppProcess]:
    """Hand every app process to supervisord (started, or updated if running); fail with its
    log if one keeps exiting at start (supervisord goes on retrying it)."""
    home = Path(settings.home).resolve()
    # the ingest flow honours file events only under the directories the watcher watches
    roots = tuple(str(d.resolve()) for d in watch_dirs)
    settings = msgspec.structs.replace(
        settings, ingest=msgspec.structs.replace(settings.ingest, watch_roots=roots)
    )
    processes = app_processes(settings, watch_dirs)
    programs = []
    for process in processes:
        _prepare_recovery(process)
        env = process_environ(settings, process)
        programs.append(Program(process.name, process.argv, env, process.stop_signal))
    paths = SupervisorPaths(home)
    apply_config(paths, programs, Path.cwd())
    restarts = {s.name: s.restarts for s in program_states(paths)}  # a running one's earlier ones
    time.sleep(START_PAUSE_SECONDS + 3)
    for state in program_states(paths):
        if state.state != "RUNNING" or state.restarts > restarts.get(state.name, 0):
            log.error(
                "app process keeps exiting at start",
                process=state.name,
                log_tail=tail(paths.program_log(state.name)),
            )
            raise StackError(
                public_reason(
                    f"{state.name} keeps exiting at start (supervisord goes on retrying it; "
                    f"`vidflow logs {state.name}` shows why)"
                )
            )
    return processes


def ensure_portal_login(settings: Settings) -> str:
    """Make sure the settings' admin can log in to the portal; say how, for the summary."""
    if importlib.util.find_spec("portal.auth.accounts") is None:
        return ""
    from portal.auth.accounts import ensure_admin

    portal = settings.portal
    if not ensure_admin(settings):
        return f"{portal.admin_user} (password changed since; `vidflow user create` for another)"
    if settings.env == "production":  # the password is the operator's own: do not echo it
        return f"{portal.admin_user} / VIDFLOW_PORTAL_ADMIN_PASSWORD"
    return f"{portal.admin_user} / {portal.admin_password.reveal()}"


def _summary(
    settings: Settings, processes: list[AppProcess], watch_dirs: list[Path], login: str
) -> Table:
    s = settings
    table = Table(title="vidflow is up", show_header=False)
    table.add_column("what")
    table.add_column("where")
    for process in processes:
        if process.url:
            table.add_row(process.name, process.url)
        if process.name == "portal" and login:
            table.add_row("portal login", login)
    table.add_row("watched directories", ", ".join(map(str, watch_dirs)))
    table.add_row("prometheus", f"http://127.0.0.1:{s.metrics.prometheus_port}/")
    host, _, port = s.storage.endpoint.rpartition(":")
    table.add_row(
        "minio console", f"http://{host}:{int(port) + 1}/ ({s.storage.access_key.reveal()})"
    )
    table.add_row("kafka", s.kafka.bootstrap)
    table.add_row("logs", str(Path(s.home).resolve() / "logs"))
    table.add_row("grafana dashboards", "deploy/grafana/dashboards (import, or docker compose)")
    return table


@click.command("up")
@click.argument("watch_dirs", nargs=-1, type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--external-services",
    is_flag=True,
    help="Kafka, MinIO and PostgreSQL are run by someone else (not this home's `vidflow stack`): "
    "only make the topics, bucket and schema, then start the app processes.",
)
def up_command(watch_dirs: tuple[Path, ...], external_services: bool) -> None:
    """Start services, dataflows, watcher and portal, then print where everything is."""
    settings = get_settings()
    dirs = [d.resolve() for d in watch_dirs] or [Path(settings.home).resolve() / "watch"]
    for directory in dirs:
        directory.mkdir(parents=True, exist_ok=True)
    try:
        if external_services:
            init_resources(stack_login(settings))
        else:
            ensure_up(settings)
        login = ensure_portal_login(settings)
        processes = start_pipeline(settings, dirs)
    except StackError as exc:
        raise click.ClickException(str(exc)) from None
    Console().print(_summary(settings, processes, dirs, login))


@click.command("down")
@click.option("--keep-services", is_flag=True, help="Stop the app processes only.")
def down_command(keep_services: bool) -> None:
    """Stop everything `vidflow up` started; data under VIDFLOW_HOME is kept."""
    settings = get_settings()
    home = Path(settings.home).resolve()
    try:
        stopped = shutdown(SupervisorPaths(home))
    except StackError as exc:
        raise click.ClickException(str(exc)) from None
    # processes of an older `vidflow up` that ran them detached, with pid files
    stopped += [
        p.stem.removeprefix("app-")
        for p in sorted((home / "run").glob("app-*.pid"))
        if stop_pidfile(p)
    ]
    if not keep_services:
        stopped += stop_stack(settings)
    console.print(f"stopped: {', '.join(stopped) or 'nothing was running'}")


def _uptime(seconds: int) -> str:
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02}:{secs:02}" if seconds else "-"


@click.command("status")
def status_command() -> None:
    """Every service (probed) and every app process: state, pid, uptime, restarts; exits 1 if
    anything is down."""
    settings = get_settings()
    rows = health(settings)
    table = Table(title="vidflow status")
    for column in ("name", "kind", "state", "pid", "uptime", "restarts", "detail"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            row.name, "service", "RUNNING" if row.healthy else "DOWN", "", "", "", row.detail
        )
    programs = program_states(SupervisorPaths(Path(settings.home).resolve()))
    for p in programs:
        pid = str(p.pid) if p.pid else ""
        table.add_row(
            p.name, "process", p.state, pid, _uptime(p.uptime_seconds), str(p.restarts), ""
        )
    if not programs:
        table.add_row(
            "(app processes)", "process", "STOPPED", "", "", "", "`vidflow up` starts them"
        )
    Console(width=200).print(table)
    healthy = (
        all(r.healthy for r in rows) and programs and all(p.state == "RUNNING" for p in programs)
    )
    if not healthy:
        sys.exit(1)


@click.command("logs")
@click.argument("name")
@click.option("-n", "--lines", default=50, show_default=True, help="Lines to show.")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines.")
def logs_command(name: str, lines: int, follow: bool) -> None:
    """Show an app process's log (ingest, transcode, watcher, projector, portal, supervisord)."""
    paths = SupervisorPaths(Path(get_settings().home).resolve())
    path = paths.log if name == "supervisord" else paths.program_log(name)
    if not name.replace("-", "").replace("_", "").isalnum() or not path.exists():
        raise click.ClickException(f"no log for {name!r}: `vidflow status` lists the processes")
    argv = ["tail", "-n", str(lines), *(["-F"] if follow else []), str(path)]
    os.execvp("tail", argv)
