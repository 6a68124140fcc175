"""The transcode dataflow: ``transcode.requested`` becomes a ladder of renditions, HLS and previews.

Wiring only; the logic lives in ``dataflows/transcode/``. Run it with::

    python -m bytewax.run dataflows.transcode_flow:flow -r RECOVERY_DIR -s 5 -b 30

    jobs ─ decode ─ key by video ─ TranscodeLogic (FFmpeg children, polled) ─┬─▶ status
           └─ undecodable ─▶ dlq                       failed requests ─▶ dlq ─┘
"""

from __future__ import annotations

import bytewax.operators as op
from bytewax.dataflow import Dataflow

from connectors.ffmpeg import ffmpeg_binary
from connectors.metrics import start_metrics_server
from connectors.storage import make_client, wait_for_storage
from dataflows.kafka_io import Inbound, read_events, write_results
from dataflows.transcode.logic import TranscodeContext, TranscodeLogic
from dataflows.transcode.profiles import load_profiles
from vidflow.logs import configure_logging
from vidflow.settings import Settings, get_settings

__all__ = ["build_flow", "flow"]


def _video_key(item: Inbound) -> str:
    return item.event.partition_key


def build_flow(settings: Settings) -> Dataflow:
    """The transcode dataflow for ``settings``."""
    configure_logging(settings.log_level, settings.log_format)
    ffmpeg_binary()  # fail at start-up, not on the first job, when FFmpeg is missing
    wait_for_storage(settings.storage, timeout=120)
    start_metrics_server(settings.metrics.transcode_port)
    ctx = TranscodeContext(
        settings, make_client(settings.storage), load_profiles(settings.transcode.profiles_json)
    )
    k = settings.kafka

    flow = Dataflow("vidflow-transcode")
    read = read_events("read", flow, k, [k.topic_jobs], expect="jobs")
    keyed = op.key_on("by-video", read.oks, _video_key)
    results = op.stateful("transcode", keyed, lambda resumed: TranscodeLogic(ctx, resumed))
    produced = op.map("unkey", results, lambda key_and_item: key_and_item[1])
    write_results("out", produced, read.errs, k)
    return flow


flow = build_flow(get_settings())
