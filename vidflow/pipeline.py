"""``vidflow up`` / ``vidflow down``: the whole pipeline on one machine, as detached processes.

The services come from ``vidflow stack``; on top run the dataflows (with Bytewax recovery under
``VIDFLOW_HOME/recovery``), the directory watcher (``VIDFLOW_HOME/watch`` unless directories are
given) and, when present, the portal. Each writes ``VIDFLOW_HOME/logs/<name>.log``.
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

from core.settings import Settings, get_settings, settings_environ
from vidflow.stack import StackError, ensure_up
from vidflow.stack import stop as stop_stack
from vidflow.stack.credentials import stack_login
from vidflow.stack.process import running_pid, start_detached, stop_pidfile, tail

__all__ = [
    "AppProcess",
    "app_processes",
    "down_command",
    "ensure_portal_login",
    "process_environ",
    "start_pipeline",
    "up_command",
]

console = Console(stderr=True)
SNAPSHOT_SECONDS = "5"


@dataclass(frozen=True)
class AppProcess:
    """One long-running vidflow process, and the Kafka principal it logs in as (the broker's
    ACLs hold each to its own topics: ``vidflow.stack.acls``)."""

    name: str
    argv: list[str]
    url: str = ""
    principal: str = ""


def _flow(name: str, module: str, home: Path) -> AppProcess:
    recovery = home / "recovery" / name
    return AppProcess(
        name,
        [sys.executable, "-m", "bytewax.run", f"{module}:flow", "-r", str(recovery),
         "-s", SNAPSHOT_SECONDS, "-b", "30"],
        principal=name,
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
    """Start every app process that is not running yet; fail with its log if one dies at once."""
    home = Path(settings.home).resolve()
    # the ingest flow honours file events only under the directories the watcher watches
    roots = tuple(str(d.resolve()) for d in watch_dirs)
    settings = msgspec.structs.replace(
        settings, ingest=msgspec.structs.replace(settings.ingest, watch_roots=roots)
    )
    started: list[AppProcess] = []
    processes = app_processes(settings, watch_dirs)
    for process in processes:
        pidfile = home / "run" / f"app-{process.name}.pid"
        if running_pid(pidfile) is not None:
            continue
        _prepare_recovery(process)
        env = process_environ(settings, process)
        start_detached(
            process.argv, pidfile=pidfile, log=home / "logs" / f"{process.name}.log", env=env
        )
        started.append(process)
    time.sleep(3)
    for process in started:
        if running_pid(home / "run" / f"app-{process.name}.pid") is None:
            log = home / "logs" / f"{process.name}.log"
            raise StackError(f"{process.name} exited at start; last lines of {log}:\n{tail(log)}")
    return processes


def ensure_portal_login(settings: Settings) -> str:
    """Make sure the settings' admin can log in to the portal; say how, for the summary."""
    if importlib.util.find_spec("portal.accounts") is None:
        return ""
    from portal.accounts import ensure_admin

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
def up_command(watch_dirs: tuple[Path, ...]) -> None:
    """Start services, dataflows, watcher and portal, then print where everything is."""
    settings = get_settings()
    dirs = [d.resolve() for d in watch_dirs] or [Path(settings.home).resolve() / "watch"]
    for directory in dirs:
        directory.mkdir(parents=True, exist_ok=True)
    try:
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
    stopped = [
        p.stem.removeprefix("app-")
        for p in sorted((home / "run").glob("app-*.pid"))
        if stop_pidfile(p)
    ]
    if not keep_services:
        stopped += stop_stack(settings)
    console.print(f"stopped: {', '.join(stopped) or 'nothing was running'}")
