"""The ingest dataflow: file events and uploads become verified, chunked video sources.

Wiring only; the logic lives in ``dataflows/ingest/``. Run it with::

    python -m bytewax.run dataflows.ingest_flow:flow -r RECOVERY_DIR -s 5

    file-events ─┐                                      ┌─ status events ─▶ vidflow.status
    uploads ─────┴─ decode ─ admit ─ by stream ─ IngestLogic ─┤
                   │         └─ beyond the sender's grant ─┐  └─ transcode.requested ─▶ vidflow.jobs
                   └─ undecodable or wrong family ─────────┴─▶ vidflow.dlq
"""

from __future__ import annotations

from typing import Any

import bytewax.operators as op
from bytewax.dataflow import Dataflow, Stream
from bytewax.inputs import Source
from bytewax.outputs import Sink

from connectors.metrics import start_metrics_server
from connectors.storage import ensure_bucket, make_client, wait_for_storage
from core import events as ev
from core.layout import ObjectLayout
from core.logs import configure_logging
from core.settings import Settings, get_settings
from dataflows.ingest.admission import Admission
from dataflows.ingest.logic import IngestContext, IngestLogic
from dataflows.ingest.memory import pin_mmap_threshold
from dataflows.ingest.store import ChunkStore
from dataflows.kafka_io import (
    Inbound,
    SinkMessage,
    kafka_sink,
    kafka_source,
    read_source,
    write_sink,
)

__all__ = ["build_flow", "flow", "stream_key"]


def stream_key(item: Inbound) -> str:
    """File events are keyed by stream (host + path); an upload is a stream of its own."""
    event = item.event
    if isinstance(event, ev.UploadCompleted):
        return f"upload:{event.upload_id}"
    return event.partition_key


def build_flow(
    settings: Settings, *, source: Source[Any], sink: Sink[SinkMessage], store: ChunkStore
) -> Dataflow:
    """The ingest dataflow for ``settings``, reading ``source`` and writing ``sink``.

    Touches nothing outside the process (no service is waited for), so tests build it with
    Bytewax's testing source and sink and an in-memory store; :func:`flow` wires production.
    """
    ctx = IngestContext(settings, store)
    k = settings.kafka

    flow = Dataflow("vidflow-ingest")
    # each topic with its own family: a wrong-family event (a status event on the uploads topic,
    # say) becomes a dead letter with its raw bytes, not a silent drop; one input step, so the
    # offsets a recovery store already holds stay valid
    families = {
        k.topic_file_events: ev.FileChanged.topic,
        k.topic_uploads: ev.UploadCompleted.topic,
    }
    read = read_source("read", flow, source, expect=families)
    # every event is untrusted: one beyond its sender's grant is a dead letter, not an action
    admission = Admission(settings, store.client, ctx.with_storage_retry)
    checked = op.branch(
        "admit", op.map("check", read.oks, admission), lambda item: isinstance(item, Inbound)
    )
    admitted: Stream[Inbound] = checked.trues  # type: ignore[assignment]
    rejected: Stream[ev.DeadLetter] = checked.falses  # type: ignore[assignment]
    keyed = op.key_on("by-stream", admitted, stream_key)
    results = op.stateful("ingest", keyed, lambda resumed: IngestLogic(ctx, resumed))
    produced = op.map("unkey", results, lambda key_and_item: key_and_item[1])
    write_sink("out", produced, op.merge("dead", read.errs, rejected), k.topic_dlq, sink)
    return flow


def flow() -> Dataflow:
    """The production ingest flow (``python -m bytewax.run dataflows.ingest_flow:flow``): waits
    for the object store and Kafka, makes the bucket, serves metrics, reads and writes Kafka."""
    settings = get_settings()
    configure_logging(settings.log_level, settings.log_format)
    pin_mmap_threshold()  # peak RSS independent of file size, run after run
    wait_for_storage(settings.storage, timeout=120)
    client = make_client(settings.storage)
    ensure_bucket(client, settings.storage)
    start_metrics_server(settings.metrics.ingest_port)
    k = settings.kafka
    return build_flow(
        settings,
        source=kafka_source(k, [k.topic_file_events, k.topic_uploads]),
        sink=kafka_sink(k),
        store=ChunkStore(client, settings.storage.bucket, ObjectLayout(settings.storage)),
    )
