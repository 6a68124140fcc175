"""Running a flow's graph in this process: a scripted source in place of Kafka, a list as sink.

The source plays a script: Kafka messages (as ``KafkaSource`` emits them), actions taken between
them (a file written, as the watcher would see it), pauses, and a wait for a condition on what the
flow produced. It stays open until the script ends, because a Bytewax flow stops at the end of
its input and with it every timer a stateful step set (an inactivity timeout, an FFmpeg poll).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from bytewax.connectors.kafka import KafkaSinkMessage, KafkaSourceMessage
from bytewax.dataflow import Dataflow
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from bytewax.testing import cluster_main, run_main

from core import events as ev

__all__ = [
    "Do",
    "Output",
    "Pause",
    "Script",
    "ScriptedSource",
    "Send",
    "Until",
    "run_flow",
]

E = TypeVar("E")
EPOCH = timedelta(milliseconds=200)  # short epochs (the default is 10 s): no run waits on one
POLL = timedelta(milliseconds=50)


@dataclass(frozen=True)
class Pause:
    """Emit nothing for ``seconds``."""

    seconds: float


@dataclass(frozen=True)
class Do:
    """Run ``action`` here in the script (on the reading worker's thread)."""

    action: Callable[[], object]


@dataclass(frozen=True)
class Until:
    """Wait until ``done()`` holds, at most ``timeout`` seconds (then the source ends anyway and
    the timeout is recorded in :attr:`ScriptedSource.timed_out`)."""

    done: Callable[[], bool]
    timeout: float
    what: str = ""


@dataclass(frozen=True)
class Send:
    """A message on ``topic`` at ``offset``; its content is made when the step is reached (a
    file event says the file's size at that moment)."""

    topic: str
    offset: int
    make: Callable[[], ev.Event | bytes]

    def message(self) -> KafkaSourceMessage[bytes, bytes]:
        """The message as ``KafkaSource`` emits it: an encoded event, or raw bytes as sent."""
        made = self.make()
        raw = made if isinstance(made, bytes) else ev.encode(made)
        key = made.partition_key.encode() if isinstance(made, ev.Event) else b""
        return KafkaSourceMessage(key=key, value=raw, topic=self.topic, offset=self.offset)


Step = Send | Pause | Do | Until


@dataclass
class Script:
    """Builds the steps, giving each topic's messages consecutive offsets (as Kafka would)."""

    steps: list[Step] = field(default_factory=list)
    offsets: dict[str, int] = field(default_factory=dict)

    def send(self, topic: str, what: ev.Event | bytes | Callable[[], ev.Event | bytes]) -> int:
        """Send ``what`` (or what it makes when reached) on ``topic``; its offset."""
        offset = self.offsets.get(topic, 0)
        self.offsets[topic] = offset + 1
        make = what if callable(what) else (lambda: what)
        self.steps.append(Send(topic, offset, make))
        return offset

    def then(self, *steps: Pause | Do | Until) -> None:
        self.steps.extend(steps)


class _ScriptPartition(StatefulSourcePartition[Any, int]):
    def __init__(self, source: ScriptedSource) -> None:
        self.source = source
        self.index = 0
        self.waiting_until: float | None = None  # monotonic end of a Pause or an Until
        self.wake: datetime | None = None

    def next_batch(self) -> list[Any]:
        steps, batch = self.source.steps, list[Any]()
        self.wake = None
        while self.index < len(steps):
            step = steps[self.index]
            if isinstance(step, Do):
                step.action()
            elif isinstance(step, Pause | Until):
                now = time.monotonic()
                if self.waiting_until is None:
                    length = step.seconds if isinstance(step, Pause) else step.timeout
                    self.waiting_until = now + length
                if isinstance(step, Until) and step.done():
                    pass
                elif now < self.waiting_until:
                    pause = isinstance(step, Pause)
                    left = timedelta(seconds=self.waiting_until - now) if pause else POLL
                    self.wake = datetime.now(UTC) + min(left, POLL)
                    return batch
                elif isinstance(step, Until):
                    self.source.timed_out.append(step.what or f"step {self.index}")
                self.waiting_until = None
            else:
                batch.append(step.message())
            self.index += 1
        if batch:
            return batch
        raise StopIteration

    def next_awake(self) -> datetime | None:
        return self.wake

    def snapshot(self) -> int:
        return self.index


class ScriptedSource(FixedPartitionedSource[Any, int]):
    """One partition playing ``steps`` (see the module docstring); only one worker reads it."""

    def __init__(self, steps: Sequence[Step]) -> None:
        self.steps = list(steps)
        self.timed_out: list[str] = []

    def list_parts(self) -> list[str]:
        return ["script"]

    def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> _ScriptPartition:
        return _ScriptPartition(self)


class Output(list[KafkaSinkMessage[Any, Any]]):
    """What a flow wrote to its sink (the list a ``TestingSink`` appends to), decoded on demand."""

    def events(self, topic: str) -> list[ev.AnyEvent]:
        return [ev.decode(m.value) for m in list(self) if m.topic == topic]

    def of(self, topic: str, kind: type[E]) -> list[E]:
        return [e for e in self.events(topic) if isinstance(e, kind)]


def run_flow(flow: Dataflow, workers: int) -> float:
    """Run ``flow`` to the end of its input on ``workers`` worker threads of this process (one
    worker: in this thread); the seconds it took."""
    started = time.monotonic()
    if workers == 1:
        run_main(flow, epoch_interval=EPOCH)  # type: ignore[no-untyped-call]
    else:
        cluster_main(  # type: ignore[no-untyped-call]
            flow, [], 0, epoch_interval=EPOCH, worker_count_per_proc=workers
        )
    return time.monotonic() - started
