"""Bytewax's Kafka source, resting between polls while its partition is quiet.

``KafkaSource`` polls each partition with a 1 ms timeout, and Bytewax calls an empty partition
again after 1 ms: an idle flow woke about a thousand times a second per partition it reads,
costing CPU beside every encode and every test. Here a partition whose last poll was empty asks
to be called again only after ``rest`` (its next message waits at most that long); one that
returned messages is called again at once, so a busy partition reads at full speed.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from bytewax.connectors.kafka import KafkaSource
from bytewax.inputs import StatefulSourcePartition

__all__ = ["IDLE_REST", "RestingKafkaSource", "RestingPartition"]

IDLE_REST = timedelta(milliseconds=20)


class RestingPartition(StatefulSourcePartition[Any, Any]):
    """A partition of another source that rests ``rest`` after a poll that found nothing."""

    def __init__(self, inner: StatefulSourcePartition[Any, Any], rest: timedelta) -> None:
        self._inner = inner
        self._rest = rest
        self._awake: datetime | None = None

    def next_batch(self) -> list[Any]:
        batch = self._inner.next_batch()
        self._awake = None if batch else datetime.now(UTC) + self._rest
        return list(batch)

    def next_awake(self) -> datetime | None:
        return self._awake

    def snapshot(self) -> Any:
        return self._inner.snapshot()

    def close(self) -> None:
        self._inner.close()


class RestingKafkaSource(KafkaSource):
    """``KafkaSource`` whose partitions rest ``rest`` after an empty poll."""

    def __init__(self, *args: Any, rest: timedelta = IDLE_REST, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._rest = rest

    def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> RestingPartition:  # type: ignore[override]
        return RestingPartition(super().build_part(step_id, for_part, resume_state), self._rest)
