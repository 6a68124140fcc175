"""``vidflow portal serve|project|rebuild``."""

from __future__ import annotations

import click
import uvicorn
from confluent_kafka import TopicPartition

from connectors.kafka import high_watermarks, wait_for_kafka
from connectors.metrics import start_metrics_server
from portal.projector import Projector, drop_projection
from vidflow.settings import Settings, get_settings
from vidflow.stack.process import running_pid

__all__ = ["portal", "projector_pid", "replay_to_end"]


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
        # (portal/forwarded.py), so a local client cannot pick its own address.
        proxy_headers=False,
    )


@portal.command()
def project() -> None:
    """Apply status events and dead letters to PostgreSQL, continuously."""
    settings = get_settings()
    wait_for_kafka(settings.kafka, timeout=120)
    start_metrics_server(settings.metrics.projector_port)
    Projector(settings).run()


def replay_to_end(projector: Projector) -> int:
    """Consume every partition of the projected topics from its stored offset to the end it
    had when this started, then stop; returns how many messages changed something.

    Every partition is assigned explicitly (no group subscription): a running projector in the
    same group cannot take partitions away, and a partition already read to its end (stored
    offset at the high watermark) is simply done, not waited for.
    """
    settings = projector.settings
    ends = {
        (topic, partition): high
        for topic in projector.topics
        for partition, high in high_watermarks(settings.kafka, topic).items()
    }
    starts = projector._stored_offsets([TopicPartition(t, p) for t, p in sorted(ends)])
    positions = {(tp.topic, tp.partition): (tp.offset if tp.offset >= 0 else 0) for tp in starts}
    behind = {key for key, end in ends.items() if positions[key] < end}
    consumer = projector.consumer
    try:
        consumer.assign([tp for tp in starts if (tp.topic, tp.partition) in behind])
        while behind:
            messages = [m for m in consumer.consume(500, 1.0) if m.error() is None]
            if messages:
                projector.apply_batch(messages)
                for m in messages:
                    key = (str(m.topic()), int(m.partition() or 0))
                    positions[key] = max(positions[key], int(m.offset() or 0) + 1)
            # the consumer's own position also steps over offsets that hold no message
            # (transaction markers, compacted records)
            for tp in consumer.position([TopicPartition(t, p) for t, p in behind]):
                key = (tp.topic, tp.partition)
                positions[key] = max(positions[key], tp.offset)
            behind = {key for key in behind if positions[key] < ends[key]}
    finally:
        consumer.close()
    return projector.applied


def projector_pid(settings: Settings) -> int | None:
    """The pid of the projector ``vidflow up`` started, if it is running."""
    return running_pid(settings.home / "run" / "app-projector.pid")


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
