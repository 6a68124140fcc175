"""Typed JSON answers of the operations API (msgspec Structs: the OpenAPI document shows them)."""

from __future__ import annotations

from typing import Any

import msgspec

from portal import queries

__all__ = ["LetterOut", "OperationsOut", "PartitionOut"]


class PartitionOut(msgspec.Struct):
    """One partition: its end, and how far behind each reader that reports a position is."""

    topic: str
    partition: int
    end: int
    projector_lag: int | None
    flow_lag: float | None


class LetterOut(msgspec.Struct):
    """A dead letter (its raw bytes counted, not shown) and its last replay."""

    id: str
    source_topic: str
    partition: int
    offset: int
    key: str
    stage: str
    error: str
    bytes: int
    replayed_at: str | None
    replay_status: str | None
    replay_error: str | None
    replays: int

    @classmethod
    def of(cls, x: queries.Letter) -> LetterOut:
        d, r = x.letter, x.replay
        return cls(
            id=d.id,
            source_topic=d.source_topic,
            partition=d.partition,
            offset=d.offset,
            key=d.original_key,
            stage=d.stage,
            error=d.error,
            bytes=len(d.raw),
            replayed_at=r.replayed_at.isoformat() if r and r.replayed_at else None,
            replay_status=r.status if r else None,
            replay_error=r.error or None if r else None,
            replays=r.count if r else 0,
        )


class OperationsOut(msgspec.Struct):
    """The operations page as JSON; an ``*_error`` says which source did not answer."""

    partitions: list[PartitionOut]
    throughput: dict[str, float]
    workers: list[dict[str, Any]]
    prometheus_error: str | None
    kafka_error: str | None
    dead_letters: list[LetterOut]
