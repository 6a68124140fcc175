"""``vidflow portal serve|project|rebuild``."""

from __future__ import annotations

import click
import uvicorn

from connectors.kafka import high_watermarks, wait_for_kafka
from connectors.metrics import start_metrics_server
from portal.projector import Projector, drop_projection
from vidflow.settings import get_settings

__all__ = ["portal", "replay_to_end"]


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
        proxy_headers=True,
    )


@portal.command()
def project() -> None:
    """Apply status events and dead letters to PostgreSQL, continuously."""
    settings = get_settings()
    wait_for_kafka(settings.kafka, timeout=120)
    start_metrics_server(settings.metrics.projector_port)
    Projector(settings).run()


def replay_to_end(projector: Projector) -> int:
    """Consume until every partition of the projected topics is read to its current end."""
    settings = projector.settings
    ends = {
        (topic, partition): high
        for topic in projector.topics
        for partition, high in high_watermarks(settings.kafka, topic).items()
    }
    projector.consumer.subscribe(projector.topics, on_assign=projector.on_assign)
    positions: dict[tuple[str, int], int] = {}
    while any(positions.get(key, 0) < end for key, end in ends.items() if end > 0):
        messages = [m for m in projector.consumer.consume(500, 1.0) if m.error() is None]
        if messages:
            projector.apply_batch(messages)
            for m in messages:
                positions[(str(m.topic()), int(m.partition() or 0))] = int(m.offset() or 0) + 1
    projector.consumer.close()
    return projector.applied


@portal.command()
def rebuild() -> None:
    """Drop the projection and replay vidflow.status from the beginning."""
    settings = get_settings()
    drop_projection(settings)
    applied = replay_to_end(Projector(settings))
    click.echo(f"projection rebuilt: {applied} event(s) applied")
