"""``vidflow portal serve|project|rebuild``."""

from __future__ import annotations

from pathlib import Path

import click
import uvicorn

from connectors.kafka import wait_for_kafka
from connectors.metrics import start_metrics_server
from core.settings import Settings, get_settings
from portal.projector import Projector, drop_projection
from portal.rebuild import replay_to_end
from vidflow.stack.process import running_pid
from vidflow.supervise import running_program

__all__ = ["portal", "projector_pid"]


@click.group()
def portal() -> None:
    """The web portal and its projection of vidflow.status."""


@portal.command()
@click.option("--host", default=None, help="Address to bind (default: VIDFLOW_PORTAL_HOST).")
@click.option("--port", default=None, type=int, help="Port (default: VIDFLOW_PORTAL_PORT).")
def serve(host: str | None, port: int | None) -> None:
    """Serve the portal."""
    settings = get_settings()
    uvicorn.run(
        "portal.app:create_app",
        factory=True,
        host=host or settings.portal.host,
        port=port or settings.portal.port,
        log_level="warning",
        # uvicorn would believe X-Forwarded-For from 127.0.0.1 (FORWARDED_ALLOW_IPS) before the
        # app sees the request; the app decides from VIDFLOW_PORTAL_TRUSTED_PROXIES instead
        # (portal/auth/forwarded.py), so a local client cannot pick its own address.
        proxy_headers=False,
    )


@portal.command()
def project() -> None:
    """Apply status events and dead letters to PostgreSQL, continuously."""
    settings = get_settings()
    wait_for_kafka(settings.kafka, timeout=120)
    start_metrics_server(settings.metrics.projector_port)
    Projector(settings).run()


def projector_pid(settings: Settings) -> int | None:
    """The pid of the projector ``vidflow up`` started, if it is running."""
    home = Path(settings.home).resolve()
    return running_program(home, "projector") or running_pid(home / "run" / "app-projector.pid")


@portal.command()
def rebuild() -> None:
    """Drop the projection and replay vidflow.status from the beginning."""
    settings = get_settings()
    pid = projector_pid(settings)
    if pid is not None:
        raise click.ClickException(
            f"the projector is running (pid {pid}): it would keep applying events into the "
            "tables being rebuilt. Stop it first (`vidflow down`, or `kill "
            f"{pid}`), run `vidflow portal rebuild` again, then `vidflow up`."
        )
    drop_projection(settings)
    applied = replay_to_end(Projector(settings))
    click.echo(f"projection rebuilt: {applied} event(s) applied")
