"""The transcode dataflow: ``transcode.requested`` becomes a ladder of renditions, HLS and previews.

Wiring only; the logic lives in ``dataflows/transcode/``. Run it with::

    python -m bytewax.run dataflows.transcode_flow:flow -r RECOVERY_DIR -s 5 -b 30
    # a cluster: the same with -i 0 / -i 1 and -a "host0:2101;host1:2101" (one per process)

    jobs ─ decode ─ screen ─ key by video ─ plan ─┬─ unit tasks/cancels ─ key by unit ─ encode ─┐
           │        │                             └─ job opened/closed ─┐      status ◀────────┤
           │        │                                                   ▼                      │
           │        │                         key by video ─ collect ◀─ unit outcomes ◀────────┘
           │        │                                          └─▶ status, dlq, jobs (stop units)
           │        └─ refused (source not the layout's, wrong bucket, unknown profile) ─▶ dlq
           └─ undecodable ─▶ dlq

``plan`` spreads a job's units over every worker of the cluster; ``unit_mode=auto`` picks
``ladder`` (one decode for many rungs) on one process and ``rung`` across several.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.inputs import Source
from bytewax.outputs import Sink
from minio import Minio

from connectors.ffmpeg import ffmpeg_binary, usable_profiles
from connectors.metrics import start_metrics_server
from connectors.storage import make_client, wait_for_storage
from core.logs import configure_logging, get_logger
from core.settings import Settings, get_settings
from dataflows.kafka_io import (
    Inbound,
    Outbound,
    SinkMessage,
    kafka_sink,
    kafka_source,
    read_source,
    write_sink,
)
from dataflows.transcode.cluster import ClusterShape, choose_unit_mode, cluster_shape
from dataflows.transcode.collect import CollectLogic
from dataflows.transcode.context import TranscodeContext
from dataflows.transcode.encode import EncodeLogic
from dataflows.transcode.messages import (
    CollectMessage,
    JobClosed,
    JobOpened,
    UnitCancel,
    UnitLive,
    UnitOutcome,
    UnitStopped,
    UnitTask,
    VideoPurge,
)
from dataflows.transcode.plan import PlanLogic
from dataflows.transcode.validate import RequestRules, screen_requests

__all__ = ["build_flow", "flow"]


def _video_key(item: Inbound) -> str:
    return item.event.partition_key


def _value(key_and_item: tuple[str, Any]) -> Any:
    return key_and_item[1]


def _for_encode(item: Any) -> tuple[str, UnitTask | UnitCancel] | None:
    return (item.key, item) if isinstance(item, UnitTask | UnitCancel) else None


def _for_collect(
    item: Any,
) -> tuple[str, CollectMessage] | None:
    if isinstance(item, JobOpened | UnitOutcome | UnitLive):
        return item.plan.video_id, item
    if isinstance(item, JobClosed | UnitStopped | VideoPurge):
        return item.video_id, item
    return None


def _for_kafka(item: Any) -> Outbound | None:
    return item if isinstance(item, Outbound) else None


def build_flow(
    settings: Settings,
    *,
    source: Source[Any],
    sink: Sink[SinkMessage],
    client: Minio,
    shape: ClusterShape,
) -> Dataflow:
    """The transcode dataflow for ``settings``, reading ``source`` and writing ``sink``, shaped
    for the cluster ``shape`` it runs on.

    Touches nothing outside the process (no service is waited for, ``client`` is not called
    while building), so tests build it with Bytewax's testing source and sink; :func:`flow`
    wires production.
    """
    mode = choose_unit_mode(settings.transcode.unit_mode, shape)
    ctx = TranscodeContext(
        settings,
        client,
        usable_profiles(settings.transcode.profiles),
        shape,
        mode,
    )
    k = settings.kafka

    flow = Dataflow("vidflow-transcode")
    read = read_source("read", flow, source, expect="jobs")
    rules = RequestRules(settings.storage.bucket, ctx.layout, frozenset(ctx.profiles))
    screened = screen_requests("screen", read.oks, rules)
    keyed = op.key_on("by-video", screened.oks, _video_key)
    planned = op.map("plan-out", op.stateful("plan", keyed, lambda r: PlanLogic(ctx, r)), _value)

    units = op.filter_map("to-encode", planned, _for_encode)
    encoded = op.map(
        "encode-out", op.stateful("encode", units, lambda r: EncodeLogic(ctx, r)), _value
    )

    to_collect = op.merge(
        "to-collect",
        op.filter_map("plan-to-collect", planned, _for_collect),
        op.filter_map("encode-to-collect", encoded, _for_collect),
    )
    collected = op.stateful("collect", to_collect, lambda r: CollectLogic(ctx, r))

    produced = op.merge(
        "produced",
        op.filter_map("encode-to-kafka", encoded, _for_kafka),
        op.map("collect-out", collected, _value),
    )
    refused = op.merge("refused", read.errs, screened.errs)
    write_sink("out", produced, refused, k.topic_dlq, sink)
    return flow


def flow() -> Dataflow:
    """The production transcode flow (``python -m bytewax.run dataflows.transcode_flow:flow``):
    checks FFmpeg, waits for the object store and Kafka, serves metrics, reads and writes Kafka."""
    settings = get_settings()
    configure_logging(settings.log_level, settings.log_format)
    ffmpeg_binary()  # fail at start-up, not on the first job, when FFmpeg is missing
    wait_for_storage(settings.storage, timeout=120)
    shape = cluster_shape(sys.argv[1:], os.environ)
    port = settings.metrics.transcode_port
    start_metrics_server(port + shape.process_id if port > 0 else 0)
    get_logger("vidflow.transcode").info(
        "transcode flow", processes=shape.processes, workers=shape.workers,
        process=shape.process_id, unit_mode=choose_unit_mode(settings.transcode.unit_mode, shape),
    )  # fmt: skip
    k = settings.kafka
    return build_flow(
        settings,
        source=kafka_source(k, [k.topic_jobs]),
        sink=kafka_sink(k),
        client=make_client(settings.storage),
        shape=shape,
    )
