"""A quiet Kafka partition rests between polls; a busy one is read again at once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from bytewax.inputs import StatefulSourcePartition

from dataflows.resting_source import RestingPartition


class Batches(StatefulSourcePartition[Any, int]):
    """A partition that returns the given batches in turn, and records its close."""

    def __init__(self, *batches: list[str]) -> None:
        self.batches = list(batches)
        self.read = 0
        self.closed = False

    def next_batch(self) -> list[str]:
        batch = self.batches.pop(0)
        self.read += len(batch)
        return batch

    def snapshot(self) -> int:
        return self.read

    def close(self) -> None:
        self.closed = True


def test_an_empty_poll_rests_and_a_full_one_does_not() -> None:
    inner = Batches(["a", "b"], [], ["c"])
    part = RestingPartition(inner, timedelta(milliseconds=20))
    assert part.next_awake() is None  # the first poll comes at once

    assert part.next_batch() == ["a", "b"]
    assert part.next_awake() is None

    before = datetime.now(UTC)
    assert part.next_batch() == []
    awake = part.next_awake()
    assert awake is not None
    assert (
        before + timedelta(milliseconds=20)
        <= awake
        <= datetime.now(UTC) + timedelta(milliseconds=20)
    )

    assert part.next_batch() == ["c"]
    assert part.next_awake() is None


def test_the_position_and_the_close_are_the_inner_partitions() -> None:
    inner = Batches(["a", "b", "c"])
    part = RestingPartition(inner, timedelta(milliseconds=20))
    part.next_batch()
    assert part.snapshot() == 3
    part.close()
    assert inner.closed
