"""The one retry policy: a call to a service that comes and goes is tried again with exponential
backoff, capped, until a time budget runs out; then it fails with a typed error naming it.

Every wait for a service goes through :func:`retry_call`: waiting for Kafka or MinIO at start-up
(:func:`wait_until`, any failure means "not yet") and riding out a storage outage in a flow
(``connectors.storage.retry_storage``, only transient failures are waited out).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

__all__ = ["RetryPolicy", "ServiceUnavailable", "retry_call", "wait_until"]

T = TypeVar("T")


class ServiceUnavailable(RuntimeError):
    """A service did not answer before the deadline; the text names it and the last error."""


@dataclass(frozen=True)
class RetryPolicy:
    """How long to keep trying (``budget`` seconds from the first attempt) and how long to wait
    between attempts (doubling from ``first_delay`` up to ``max_delay``)."""

    budget: float
    first_delay: float = 0.2
    max_delay: float = 2.0

    def delays(self) -> Iterator[float]:
        """The waits between attempts, endless: the budget, not a count, ends the retries."""
        delay = self.first_delay
        while True:
            yield delay
            delay = min(delay * 2, self.max_delay)


# The clock and the sleep are looked up at call time so a unit test can run a 300 s budget
# on a fake clock.
def _now() -> float:
    return time.monotonic()


def _sleep(seconds: float) -> None:
    time.sleep(seconds)


def _any_failure(exc: Exception) -> bool:
    return True


def retry_call(
    what: str,
    call: Callable[[], T],
    policy: RetryPolicy,
    *,
    retry_on: Callable[[Exception], bool] = _any_failure,
    on_retry: Callable[[Exception, float], None] | None = None,
    exhausted: Callable[[str], Exception] = ServiceUnavailable,
) -> T:
    """``call()``, tried again after each failure ``retry_on`` accepts (others propagate at
    once) while the next attempt would still start within the budget; then ``exhausted`` with
    a text naming ``what`` and the last error, chained to it."""
    deadline = _now() + policy.budget
    for delay in policy.delays():
        try:
            return call()
        except Exception as exc:  # the caller's retry_on decides what is worth another try
            if not retry_on(exc):
                raise
            if _now() + delay > deadline:
                raise exhausted(
                    f"{what} did not answer within {policy.budget:.0f}s: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
            if on_retry is not None:
                on_retry(exc, delay)
        _sleep(delay)
    raise AssertionError("unreachable: the delays never end")  # pragma: no cover


def wait_until(
    name: str,
    probe: Callable[[], T],
    timeout: float,
    *,
    first_delay: float = 0.2,
    max_delay: float = 2.0,
) -> T:
    """Call ``probe`` until it stops raising: services come and go, so retry, don't crash."""
    return retry_call(name, probe, RetryPolicy(timeout, first_delay, max_delay))
