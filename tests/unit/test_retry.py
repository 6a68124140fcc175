"""One retry policy: backoff doubling to a cap within a time budget, for start-up waits and for
a flow riding out a storage outage (run on a fake clock: a 300 s budget takes no time)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from confluent_kafka import KafkaError, KafkaException
from minio.error import S3Error
from urllib3.exceptions import ProtocolError

import connectors.retry
from connectors.kafka import leader_not_ready
from connectors.retry import RetryPolicy, ServiceUnavailable, retry_call, wait_until
from connectors.storage import make_client, retry_storage
from core.layout import ObjectLayout
from core.settings import load_settings
from dataflows.ingest.logic import IngestContext, StorageUnavailable
from dataflows.ingest.store import ChunkStore


class FakeClock:
    """Time that passes only when something sleeps; every sleep is recorded."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(connectors.retry, "_now", lambda: fake.now)
    monkeypatch.setattr(connectors.retry, "_sleep", fake.sleep)
    return fake


def s3_error(code: str) -> S3Error:
    return S3Error(None, code, f"{code} said the store", "/b/k", "req", "host")  # type: ignore[arg-type]


def failing(*failures: Exception, result: str = "done") -> tuple[Callable[[], str], list[int]]:
    """A call that raises ``failures`` in turn, then returns ``result``; counts its calls."""
    pending: Iterator[Exception] = iter(failures)
    calls = [0]

    def call() -> str:
        calls[0] += 1
        failure = next(pending, None)
        if failure is not None:
            raise failure
        return result

    return call, calls


@pytest.fixture
def ingest() -> Iterator[IngestContext]:
    settings = load_settings({})
    client = make_client(settings.storage)  # never reached: the calls below are stand-ins
    ctx = IngestContext(settings, ChunkStore(client, "b", ObjectLayout(settings.storage)))
    yield ctx
    ctx.io.shutdown()


def test_backoff_doubles_up_to_the_cap() -> None:
    delays = RetryPolicy(budget=300, first_delay=0.5, max_delay=10).delays()
    assert [next(delays) for _ in range(8)] == [0.5, 1, 2, 4, 8, 10, 10, 10]


def test_a_service_that_comes_back_is_waited_for(clock: FakeClock) -> None:
    call, calls = failing(ConnectionRefusedError(), ConnectionRefusedError())
    assert wait_until("kafka", call, timeout=60) == "done"
    assert calls == [3] and clock.slept == [0.2, 0.4]


def test_a_service_that_never_answers_fails_within_its_budget(clock: FakeClock) -> None:
    with pytest.raises(ServiceUnavailable, match=r"kafka did not answer within 10s"):
        wait_until("kafka", failing(*[OSError("refused")] * 1000)[0], timeout=10)
    assert sum(clock.slept) <= 10 and max(clock.slept) == 2.0


def test_only_what_retry_on_accepts_is_retried(clock: FakeClock) -> None:
    call, calls = failing(KeyError("final"))
    with pytest.raises(KeyError):
        retry_call("x", call, RetryPolicy(60), retry_on=lambda exc: isinstance(exc, OSError))
    assert calls == [1] and clock.slept == []


def test_ingest_rides_out_a_storage_outage_on_the_one_policy(
    clock: FakeClock, ingest: IngestContext
) -> None:
    """Network errors and the store's busy answers are waited out with the shared backoff."""
    call, calls = failing(ConnectionRefusedError(), ProtocolError("reset"), s3_error("SlowDown"))
    assert ingest.with_storage_retry("put chunk", call) == "done"
    assert calls == [4] and clock.slept == [0.5, 1.0, 2.0]


def test_ingest_raises_a_final_storage_answer_at_once(
    clock: FakeClock, ingest: IngestContext
) -> None:
    call, calls = failing(s3_error("NoSuchKey"))
    with pytest.raises(S3Error, match="NoSuchKey"):
        ingest.with_storage_retry("stat source", call)
    assert calls == [1] and clock.slept == []


def test_ingest_gives_up_after_five_minutes_of_outage(
    clock: FakeClock, ingest: IngestContext
) -> None:
    call, calls = failing(*[ConnectionRefusedError()] * 10_000)
    with pytest.raises(StorageUnavailable, match="put chunk did not answer within 300s"):
        ingest.with_storage_retry("put chunk", call)
    assert 290 <= sum(clock.slept) <= 300  # up to the budget, never past it
    assert max(clock.slept) == 10.0 and clock.slept[:3] == [0.5, 1.0, 2.0]
    assert calls[0] == len(clock.slept) + 1


def test_retry_storage_names_the_step_when_the_store_stays_away(clock: FakeClock) -> None:
    with pytest.raises(ServiceUnavailable, match="list bucket did not answer within 300s"):
        retry_storage("list bucket", failing(*[s3_error("ServiceUnavailable")] * 10_000)[0])


def test_a_partition_whose_leader_is_settling_is_asked_again(clock: FakeClock) -> None:
    answers = [KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE]

    def watermark() -> int:
        if answers:
            raise KafkaException(KafkaError(answers.pop(0)))
        return 7

    assert retry_call("end offset", watermark, RetryPolicy(5.0), retry_on=leader_not_ready) == 7
    assert len(clock.slept) == 2
    assert not leader_not_ready(KafkaException(KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED)))
    assert not leader_not_ready(ValueError("not Kafka"))
