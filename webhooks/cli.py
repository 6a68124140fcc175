"""``vidflow webhooks send``: run the webhook sender until stopped."""

from __future__ import annotations

import click
from prometheus_client import start_http_server

from core.settings import get_settings

__all__ = ["webhooks_command"]


@click.group("webhooks")
def webhooks_command() -> None:
    """Signed POSTs of status events to the URLs users subscribed."""


@webhooks_command.command("send")
def send() -> None:
    """Queue a delivery per matching status event and POST them, retrying, until stopped."""
    from webhooks.sender import Sender

    settings = get_settings()
    if settings.metrics.webhooks_port > 0:
        start_http_server(settings.metrics.webhooks_port, addr="127.0.0.1")
    Sender(settings).run()
