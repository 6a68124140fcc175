"""Flow rerun: a flow's recovery store put aside, so its next start reads its input topics from
offset 0 into a fresh store and re-derives the same ids (the projector drops what it has)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from connectors.kafka import end_offsets
from core.logs import get_logger
from core.settings import KafkaSettings, Settings
from vidflow.stack.process import running_pid
from vidflow.supervise import running_program

__all__ = ["FLOWS", "FlowReset", "FlowRunning", "flow_running", "reset_flow"]

log = get_logger("vidflow.replay")

# Each flow's input topics (``dataflows/*_flow.py``: ``read_events(..., [topics])``).
FLOWS: dict[str, Callable[[KafkaSettings], list[str]]] = {
    "ingest": lambda k: [k.topic_file_events, k.topic_uploads],
    "transcode": lambda k: [k.topic_jobs],
}


def flow_pidfile(settings: Settings, flow: str) -> Path:
    """Where ``vidflow up`` records the flow's pid (``vidflow.pipeline.start_pipeline``)."""
    return Path(settings.home).resolve() / "run" / f"app-{flow}.pid"


def flow_running(settings: Settings, flow: str) -> int | None:
    """The pid of ``flow`` if it runs. The one place that knows how a running flow is found."""
    home = Path(settings.home).resolve()
    # supervised by `vidflow up`; a pid file is what a process started by hand (or by an
    # earlier release) leaves
    return running_program(home, flow) or running_pid(flow_pidfile(settings, flow))


def recovery_dir(settings: Settings, flow: str) -> Path:
    """The flow's Bytewax recovery store (``vidflow.pipeline._flow``)."""
    return Path(settings.home).resolve() / "recovery" / flow


class FlowRunning(RuntimeError):
    """The flow runs: its recovery store is in use and must not be touched."""


@dataclass(frozen=True)
class FlowReset:
    """What a rerun did (or would do): the store, where it went, the offsets to re-read."""

    recovery: Path
    existed: bool
    moved_to: Path | None
    deleted: bool
    ends: dict[str, dict[int, int]]


def reset_flow(
    settings: Settings, flow: str, *, dry_run: bool = False, delete: bool = False
) -> FlowReset:
    """Put the flow's recovery store aside (or delete it) so its next start reads its input
    topics from offset 0 into a fresh store (``vidflow up`` makes one when there is none).

    Refuses (:class:`FlowRunning`) while the flow runs.
    """
    pid = flow_running(settings, flow)
    if pid is not None:
        raise FlowRunning(f"the {flow} flow is running (pid {pid}): stop it first (vidflow down)")
    recovery = recovery_dir(settings, flow)
    ends = end_offsets(settings.kafka, FLOWS[flow](settings.kafka))
    existed = recovery.exists()
    moved_to: Path | None = None
    if existed and not delete:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        moved_to = recovery.with_name(f"{flow}.replaced-{stamp}")
    if not dry_run and existed:
        if moved_to is not None:
            recovery.rename(moved_to)
        else:
            shutil.rmtree(recovery)
        log.info("flow recovery reset", flow=flow, moved_to=str(moved_to or ""), deleted=delete)
    return FlowReset(recovery, existed, moved_to, existed and delete, ends)
