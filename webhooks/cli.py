"""``vidflow webhooks send``: run the webhook sender until stopped."""

from __future__ import annotations

import click

from connectors.metrics import start_metrics_server
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
    start_metrics_server(settings.metrics.webhooks_port)  # as every other process: scraped
    Sender(settings).run()
