"""``vidflow stack ...``: the local services from the command line."""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from core.settings import Settings, get_settings
from vidflow.stack import ServiceHealth, StackError, ensure_up, health, init_resources, stop
from vidflow.stack.credentials import COMPONENTS, login_environ, stack_login
from vidflow.stack.install import install_all
from vidflow.stack.service import StackPaths
from vidflow.stack.services import SERVICES

__all__ = ["render_env", "render_principal_env", "stack"]

console = Console(stderr=True)
out = Console()


def _exports(values: dict[str, str]) -> str:
    return "".join(f"export {name}={shlex.quote(value)}\n" for name, value in values.items())


def render_env(settings: Settings) -> str:
    """``export`` lines a shell can ``eval`` to reach every service of this stack (Kafka as the
    stack's ``admin``)."""
    s, pg = settings.storage, settings.postgres
    values = {
        "VIDFLOW_HOME": str(Path(settings.home).resolve()),
        **login_environ(stack_login(settings, force=True).kafka),
        "VIDFLOW_STORAGE_ENDPOINT": s.endpoint,
        "VIDFLOW_STORAGE_ACCESS_KEY": s.access_key.reveal(),
        "VIDFLOW_STORAGE_SECRET_KEY": s.secret_key.reveal(),
        "VIDFLOW_STORAGE_BUCKET": s.bucket,
        "VIDFLOW_POSTGRES_HOST": pg.host,
        "VIDFLOW_POSTGRES_PORT": str(pg.port),
        "VIDFLOW_POSTGRES_USER": pg.user,
        "VIDFLOW_POSTGRES_PASSWORD": pg.password.reveal(),
        "VIDFLOW_POSTGRES_DATABASE": pg.database,
        "VIDFLOW_METRICS_PROMETHEUS_PORT": str(settings.metrics.prometheus_port),
    }
    return _exports(values)


def render_principal_env(settings: Settings, principal: str) -> str:
    """``export`` lines with only what one Kafka principal needs: its broker and its login
    (nothing of the other services, so it can be handed to an outside producer)."""
    logged_in = stack_login(settings, principal, force=True)
    if logged_in.kafka.username != principal:
        raise StackError(
            "this stack (VIDFLOW_HOME) has no Kafka logins yet: start it once with "
            "`vidflow stack up`"
        )
    return _exports(login_environ(logged_in.kafka))


def _table(rows: list[ServiceHealth]) -> Table:
    table = Table(title="vidflow stack")
    for column in ("service", "address", "state", "pid", "detail"):
        table.add_column(column)
    for row in rows:
        state = "[green]healthy[/]" if row.healthy else "[red]down[/]"
        table.add_row(row.name, row.address, state, str(row.pid or "-"), row.detail[:80])
    return table


def _fail(exc: Exception) -> None:
    raise click.ClickException(str(exc)) from None


@click.group()
def stack() -> None:
    """Kafka, MinIO, PostgreSQL and Prometheus as local processes (data under VIDFLOW_HOME)."""


@stack.command()
def install() -> None:
    """Install (once, cached) everything the stack runs."""
    try:
        tools = install_all(Path(get_settings().cache_dir))
    except StackError as exc:
        _fail(exc)
    for name, path in tools.items():
        console.print(f"{name}: {path}")


@stack.command()
def up() -> None:
    """Start every service, wait until each answers, create topics, bucket and schema."""
    try:
        rows = ensure_up(get_settings())
    except StackError as exc:
        _fail(exc)
    console.print(_table(rows))


@stack.command()
def init() -> None:
    """Create topics, bucket and schema on services that already run (e.g. under compose)."""
    init_resources(stack_login(get_settings()))
    console.print("topics, ACLs, bucket and schema are in place")


@stack.command()
def down() -> None:
    """Stop the services (data is kept for the next `up`)."""
    stopped = stop(get_settings())
    console.print(f"stopped: {', '.join(stopped) or 'nothing was running'}")


@stack.command()
def status() -> None:
    """Each service, probed for real; exits 1 if any is down."""
    rows = health(get_settings())
    out.print(_table(rows))
    if not all(row.healthy for row in rows):
        sys.exit(1)


@stack.command()
@click.option(
    "--principal",
    type=click.Choice(COMPONENTS),
    default=None,
    help="Only the Kafka login of this principal (e.g. `producer` for an outside producer).",
)
def env(principal: str | None) -> None:
    """Print `export` lines: eval "$(vidflow stack env)" (Kafka as the stack's admin)."""
    settings = get_settings()
    try:
        if principal is None:
            text = render_env(settings)
        else:
            text = render_principal_env(settings, principal)
    except StackError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(text, nl=False)


@stack.command()
@click.argument("service", type=click.Choice([s.name for s in SERVICES]))
@click.option("-n", "--lines", default=50, show_default=True, help="Lines to show.")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines.")
def logs(service: str, lines: int, follow: bool) -> None:
    """Show a service's log."""
    path = StackPaths(Path(get_settings().home).resolve()).log(service)
    if not path.exists():
        raise click.ClickException(f"no log yet at {path}: has the stack been started?")
    argv = ["tail", "-n", str(lines), *(["-F"] if follow else []), str(path)]
    os.execvp("tail", argv)
