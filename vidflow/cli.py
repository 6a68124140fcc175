"""The ``vidflow`` command: one entry point whose subcommands live beside what they drive.

Subcommands are imported only when used, so ``vidflow stack status`` does not pay for Bytewax
or Litestar imports, and a broken optional part cannot stop the others from running.
"""

from __future__ import annotations

import importlib
import os

import click

from core.logs import configure_logging
from core.settings import Settings, SettingsError, get_settings

__all__ = ["cli", "main"]

# command name -> "module:attribute" of a click command or group
COMMANDS: dict[str, str] = {
    "stack": "vidflow.stack.cli:stack",
    "watch": "watcher.watch:watch_command",
    "submit": "vidflow.submit:submit_command",
    "profiles": "vidflow.submit:profiles_command",
    "portal": "vidflow.portal_cli:portal",
    "user": "vidflow.user_cli:user",
    "up": "vidflow.pipeline:up_command",
    "replay": "vidflow.replay:replay",
    "down": "vidflow.pipeline:down_command",
    "delete": "vidflow.delete:delete_command",
    "webhooks": "webhooks.cli:webhooks_command",
    "status": "vidflow.pipeline:status_command",
    "logs": "vidflow.pipeline:logs_command",
}

_HELP: dict[str, str] = {
    "stack": "Install, start, stop and inspect the local services.",
    "watch": "Watch directories and turn file writes into Kafka events.",
    "submit": "Upload a video file and (optionally) follow it to the end.",
    "profiles": "List the transcoding profiles `submit --profile` takes, with what each makes.",
    "portal": "Serve the web portal, run its projector, rebuild its projection.",
    "user": "Create portal users and API tokens for producers.",
    "up": "Start everything: services, then dataflows, watcher and portal under supervisord.",
    "down": "Stop everything `vidflow up` started (data is kept).",
    "status": "Every service and app process: state, pid, uptime, restarts.",
    "logs": "Show (or follow with -f) an app process's log.",
    "replay": "Reprocess videos, rerun a flow from the start, resend dead letters.",
    "delete": "Delete a video: cancel its encode, remove its objects (operator).",
    "webhooks": "Send signed webhooks of status events to subscribers.",
}


class LazyGroup(click.Group):
    """A group that imports a subcommand's module the first time the subcommand is used."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attribute = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name is not None and module_name.startswith(exc.name):
                return _unavailable(cmd_name, f"{module_name} is not part of this build")
            raise
        command: click.Command = getattr(module, attribute)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, _HELP.get(name, "")) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def _unavailable(name: str, reason: str) -> click.Command:
    def run() -> None:
        raise click.ClickException(f"`vidflow {name}` is unavailable: {reason}")

    return click.Command(name, callback=run, help=reason)


@click.group(cls=LazyGroup)
@click.version_option(package_name="vidflow")
def cli() -> None:
    """vidflow: an event-driven video processing pipeline."""
    try:
        settings = get_settings()
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None
    _log_in_to_local_stack(settings)
    configure_logging(settings.log_level, settings.log_format)


def _log_in_to_local_stack(settings: Settings) -> None:
    """With no Kafka login given, commands reach the local stack (``VIDFLOW_HOME``) as its
    admin, as they reach its MinIO and PostgreSQL with the defaults: its passwords are in a
    file only this user can read. An explicit ``VIDFLOW_KAFKA_USERNAME`` always wins."""
    from vidflow.stack.credentials import login_environ, stack_login

    logged_in = stack_login(settings)
    if logged_in is not settings:
        os.environ.update(login_environ(logged_in.kafka))
        get_settings.cache_clear()


def main() -> None:
    """Console-script entry point."""
    cli()
