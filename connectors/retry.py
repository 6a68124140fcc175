"""Waiting for a service that is not there yet: poll with backoff until a deadline."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

__all__ = ["ServiceUnavailable", "wait_until"]

T = TypeVar("T")


class ServiceUnavailable(RuntimeError):
    """A service did not answer before the deadline; the text names it and the last error."""


def wait_until(
    name: str,
    probe: Callable[[], T],
    timeout: float,
    *,
    first_delay: float = 0.2,
    max_delay: float = 2.0,
) -> T:
    """Call ``probe`` until it stops raising: services come and go, so retry, don't crash."""
    deadline = time.monotonic() + timeout
    delay = first_delay
    while True:
        try:
            return probe()
        except Exception as exc:  # any failure of the probe means "not yet"
            if time.monotonic() + delay > deadline:
                raise ServiceUnavailable(
                    f"{name} did not answer within {timeout:.0f}s: {type(exc).__name__}: {exc}"
                ) from exc
        time.sleep(delay)
        delay = min(delay * 2, max_delay)
