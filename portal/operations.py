"""Operations: lag per topic and partition, throughput, workers up, and dead letters to replay.

Kafka says where each partition ends; the projector's position is in ``consumer_offsets``
(committed with the projection); the flows keep theirs in Bytewax recovery and export their lag
to Prometheus, which also knows throughput and which processes are up. Prometheus being down
hides those figures, visibly, and nothing else.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import httpx
import msgspec
from confluent_kafka import Producer
from litestar import get, post
from litestar.exceptions import HTTPException, NotFoundException, ServiceUnavailableException
from litestar.params import FromPath
from litestar.plugins.htmx import HTMXTemplate
from litestar.response import Template
from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from connectors.kafka import end_offsets, flush_or_raise, produce_event
from core import events as ev
from core.errors import public_reason
from core.logs import get_logger
from core.settings import Settings
from portal import queries
from portal.alerts import PROMETHEUS_TIMEOUT, firing_alerts
from portal.auth import requires_admin
from portal.deps import KafkaProducer, Sessions, SettingsDep
from portal.jobs import job_for, select_videos
from portal.models import ConsumerOffset, DeadLetterReplay, DeadLetterRow
from portal.operations_schemas import LetterOut, OperationsOut, PartitionOut

__all__ = [
    "Operations",
    "api_operations",
    "api_replay_dead_letter",
    "operations_page",
    "replay_dead_letter",
    "replay_letter",
    "replay_payload",
    "reprocess_failed",
]

log = get_logger("vidflow.portal.operations")
THROUGHPUT = {
    "ingest bytes/s": "sum(rate(vidflow_ingest_bytes_read_total[1m]))",
    "chunks stored/s": "sum(rate(vidflow_ingest_chunks_total[1m]))",
    "watcher events/s": "sum(rate(vidflow_watcher_events_total[1m]))",
    "encode units/min": "sum(rate(vidflow_transcode_units_total[5m])) * 60",
    "jobs finished/min": "sum(rate(vidflow_transcode_jobs_total[5m])) * 60",
}
FLOW_LAG = "sum by (topic, partition) (bytewax_kafka_consumer_lag)"


@dataclass
class PartitionLag:
    """One partition: its end, and how far behind each reader that reports a position is."""

    topic: str
    partition: int
    end: int
    projector_lag: int | None = None
    flow_lag: float | None = None


@dataclass
class Operations:
    """Everything the operations page shows; ``prometheus_error`` set when it did not answer."""

    partitions: list[PartitionLag]
    throughput: dict[str, float] = field(default_factory=dict)
    workers: list[dict[str, Any]] = field(default_factory=list)
    prometheus_error: str = ""
    kafka_error: str = ""
    letters: list[queries.Letter] = field(default_factory=list)


async def _prometheus(settings: Settings, query: str, client: httpx.AsyncClient) -> list[Any]:
    url = f"http://127.0.0.1:{settings.metrics.prometheus_port}/api/v1/query"
    response = await client.get(url, params={"query": query})
    response.raise_for_status()
    result: list[Any] = response.json()["data"]["result"]
    return result


async def _from_prometheus(settings: Settings, ops: Operations) -> dict[tuple[str, int], float]:
    """Fill throughput and workers; return the flows' lag per (topic, partition)."""
    names = list(THROUGHPUT)
    async with httpx.AsyncClient(timeout=PROMETHEUS_TIMEOUT) as client:
        try:
            answers = await asyncio.gather(
                _prometheus(settings, "up", client),
                _prometheus(settings, FLOW_LAG, client),
                *(_prometheus(settings, THROUGHPUT[name], client) for name in names),
            )
        except (httpx.HTTPError, KeyError, ValueError) as exc:
            log.warning("prometheus unreachable", error=f"{type(exc).__name__}: {exc}")
            ops.prometheus_error = public_reason("Prometheus unreachable", exc)
            return {}
    up, lag, *rates = answers
    ops.workers = sorted(
        (
            {
                "job": s["metric"].get("job", ""),
                "instance": s["metric"].get("instance", ""),
                "up": s["value"][1] == "1",
            }
            for s in up
        ),
        key=lambda w: (w["job"], w["instance"]),
    )
    ops.throughput = {
        name: float(result[0]["value"][1]) if result else 0.0
        for name, result in zip(names, rates, strict=True)
    }
    return {
        (s["metric"].get("topic", ""), int(s["metric"].get("partition", -1))): float(s["value"][1])
        for s in lag
    }


async def gather(settings: Settings, maker: async_sessionmaker[AsyncSession]) -> Operations:
    """Read Kafka, the projection and Prometheus at once."""
    topics = settings.kafka.topics()
    ops = Operations(partitions=[])

    async def kafka() -> dict[str, dict[int, int]]:
        try:
            return await asyncio.to_thread(end_offsets, settings.kafka, topics, 5.0)
        except Exception as exc:  # noqa: BLE001 - shown on the page instead
            log.warning("kafka unreachable", error=f"{type(exc).__name__}: {exc}")
            ops.kafka_error = public_reason("Kafka unreachable", exc)
            return {}

    async def projection() -> tuple[dict[tuple[str, int], int], list[queries.Letter]]:
        async with maker() as session:
            rows = await session.execute(select(ConsumerOffset))
            offsets = {(r.topic, r.partition): r.next_offset for r in rows.scalars()}
            return offsets, await queries.dead_letters(session)

    ends, (offsets, ops.letters), flow_lag = await asyncio.gather(
        kafka(), projection(), _from_prometheus(settings, ops)
    )
    projected = {settings.kafka.topic_status, settings.kafka.topic_dlq}
    for topic in topics:
        for partition, end in ends.get(topic, {}).items():
            # The projector starts at the beginning: a partition it has not read is all lag.
            start = 0 if topic in projected else None
            next_offset = offsets.get((topic, partition), start)
            ops.partitions.append(
                PartitionLag(
                    topic=topic,
                    partition=partition,
                    end=end,
                    projector_lag=None if next_offset is None else max(0, end - next_offset),
                    flow_lag=flow_lag.get((topic, partition)),
                )
            )
    return ops


def _letter_json(x: queries.Letter) -> LetterOut:
    return LetterOut.of(x)


@get("/operations", guards=[requires_admin], include_in_schema=False)
async def operations_page(settings: SettingsDep, sessions: Sessions) -> Template:
    """Lag, throughput, workers and dead letters for whoever runs the pipeline."""
    ops, alerts = await asyncio.gather(gather(settings, sessions), firing_alerts(settings))
    return Template(template_name="operations.html", context={"ops": ops, "alerts": alerts})


@get("/api/operations", guards=[requires_admin], tags=["operations"])
async def api_operations(settings: SettingsDep, sessions: Sessions) -> OperationsOut:
    """The operations page as JSON."""
    return operations_out(await gather(settings, sessions))


def replay_payload(settings: Settings, topic: str, raw: bytes) -> bytes:
    """What to send again: the raw bytes, except a job request, which becomes a new job.

    The transcode flow drops a ``transcode.requested`` whose ``job_id`` it has seen (at-least-once
    delivery makes duplicates normal), so replaying it unchanged would do nothing: it gets a
    fresh event id and job id and the reason ``replay``.
    """
    if topic != settings.kafka.topic_jobs:
        return raw
    event = ev.try_decode(raw, "jobs")
    if not isinstance(event, ev.TranscodeRequested):
        return raw
    stamp = ev.now()
    return ev.encode(
        msgspec.structs.replace(
            event,
            id=ev.event_id("replay", event.video_id, event.id, stamp),
            job_id=ev.event_id("job", event.video_id, "replay", stamp),
            reason="replay",
            ts=stamp,
        )
    )


async def _mark(maker: async_sessionmaker[AsyncSession], letter_id: str, **values: Any) -> None:
    async with maker() as session, session.begin():
        await session.execute(
            update(DeadLetterReplay).where(DeadLetterReplay.letter_id == letter_id).values(**values)
        )


async def replay_letter(
    settings: Settings,
    maker: async_sessionmaker[AsyncSession],
    producer: Producer,
    letter_id: str,
) -> tuple[queries.Letter, str]:
    """Produce the raw bytes again to their original topic with their original key.

    The ``sending`` status is committed first and Kafka is awaited with no transaction open, so
    a slow broker holds neither a row lock nor a pooled connection. Returns the letter and the
    error text ("" when it was sent). The portal's button and ``vidflow replay dead-letters``
    both end here, so both leave the same record in ``dead_letter_replays``.
    """
    async with maker() as session, session.begin():
        letter = await session.get(DeadLetterRow, letter_id)
        if letter is None:
            raise NotFoundException(f"no dead letter {letter_id}")
        topic, key, raw = letter.source_topic, letter.original_key, letter.raw
        await session.execute(
            pg_insert(DeadLetterReplay)
            .values(letter_id=letter_id, status="sending", count=0, error="")
            .on_conflict_do_update(
                index_elements=["letter_id"],
                set_={"status": "sending", "error": "", "requested_at": func.now()},
            )
        )
    error = ""
    try:
        value = replay_payload(settings, topic, raw)
        producer.produce(topic, key=key.encode() or None, value=value)
        await asyncio.to_thread(flush_or_raise, producer)
    except Exception as exc:  # noqa: BLE001 - recorded and shown, the page keeps working
        log.warning("dead letter not replayed", letter_id=letter_id, error=f"{exc!r}")
        error = public_reason("could not replay", exc)
        await _mark(maker, letter_id, status="failed", error=error)
    else:
        await _mark(
            maker, letter_id, status="replayed", replayed_at=func.now(),
            count=DeadLetterReplay.count + 1,
        )  # fmt: skip
    async with maker() as session:
        found = await queries.dead_letter(session, letter_id)
    if found is None:  # truncated by a rebuild meanwhile
        raise NotFoundException(f"no dead letter {letter_id}")
    return found, error


@post("/operations/dead-letters/{letter_id:str}/replay", guards=[requires_admin], status_code=200,
      include_in_schema=False)  # fmt: skip
async def replay_dead_letter(
    settings: SettingsDep, sessions: Sessions, producer: KafkaProducer, letter_id: FromPath[str]
) -> Template:
    """The replay button: the row comes back marked as replayed (or with the failure)."""
    letter, _ = await replay_letter(settings, sessions, producer, letter_id)
    return HTMXTemplate(template_name="_dead_letter_row.html", context={"d": letter})


@post("/api/dead-letters/{letter_id:str}/replay", guards=[requires_admin], status_code=200,
      tags=["operations"])  # fmt: skip
async def api_replay_dead_letter(
    settings: SettingsDep, sessions: Sessions, producer: KafkaProducer, letter_id: FromPath[str]
) -> LetterOut:
    """Replay a dead letter to its original topic (503 when Kafka did not take it)."""
    letter, error = await replay_letter(settings, sessions, producer, letter_id)
    if error:
        raise ServiceUnavailableException(error)
    return _letter_json(letter)


@post("/operations/reprocess-failed", guards=[requires_admin], status_code=200,
      include_in_schema=False)  # fmt: skip
async def reprocess_failed(
    settings: SettingsDep, sessions: Sessions, producer: KafkaProducer
) -> Template:
    """The bulk button: a new job (default profile) for every failed video with a source.

    Answers a fragment with how many were sent, skipped (no verified source) and, when Kafka
    refused, the public reason; the detail goes to the log.
    """
    async with sessions() as session:
        rows = await select_videos(session, status="failed")
    sent, skipped, error = 0, 0, ""
    for row in rows:
        try:
            requested = job_for(settings, row, "")
        except HTTPException:
            skipped += 1
            continue
        try:
            produce_event(producer, settings.kafka.topic_jobs, requested)
        except Exception as exc:  # noqa: BLE001 - the fragment says what failed, the log says why
            log.warning("bulk reprocess stopped", video_id=row.id, error=f"{exc!r}")
            error = public_reason("could not request the jobs", exc)
            break
        sent += 1
    if not error:
        try:
            await asyncio.to_thread(flush_or_raise, producer)
        except Exception as exc:  # noqa: BLE001
            log.warning("bulk reprocess not flushed", error=f"{exc!r}")
            error, sent = public_reason("could not request the jobs", exc), 0
    log.info("bulk reprocess", sent=sent, skipped=skipped, failed=len(rows))
    return HTMXTemplate(
        template_name="_reprocess_failed.html",
        context={"sent": sent, "skipped": skipped, "error": error},
    )


def operations_out(ops: Operations) -> OperationsOut:
    """The operations API's typed answer for what the page shows."""
    return OperationsOut(
        partitions=[PartitionOut(**vars(p)) for p in ops.partitions],
        throughput=ops.throughput,
        workers=ops.workers,
        prometheus_error=ops.prometheus_error or None,
        kafka_error=ops.kafka_error or None,
        dead_letters=[LetterOut.of(d) for d in ops.letters],
    )
