"""How often a password may be guessed: per client address and per account, with a growing delay.

Each failed login counts against two keys, the client address (so one client cannot spray many
accounts) and the account (so many addresses cannot guess one password). Once a key has
failed ``free`` times it is closed for ``base`` seconds, and each further failure (once it is
open again) closes it for twice as long as the last (capped at ``cap``). While either key is
closed an attempt is refused before the password is even checked (no argon2 work for it) and
does not count. A success resets the account; the address keeps its failures (a client that
owns one account must not be able to wash its guesses at others).

An attempt is counted when it starts, not when its password check ends: the check awaits,
and concurrent attempts must not all pass the gate before the first failure is recorded. A
success gives the address its attempt back.

The state is in this process's memory: enough for one portal process (a restart forgets it);
several portal processes would each keep their own counts, so the limits multiply by their
number. Idle keys are forgotten after ``forget_after`` seconds and the table is bounded.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Attempt", "LoginThrottle", "Refusal"]


@dataclass
class _Record:
    failures: int = 0
    closed_until: float = 0.0
    last: float = 0.0


@dataclass(frozen=True)
class Refusal:
    """An attempt refused: try again in ``retry_after`` seconds (at ``at``, epoch seconds)."""

    retry_after: int
    at: float


@dataclass(frozen=True)
class Attempt:
    """An attempt that may go ahead; tell the throttle how it ended."""

    address_key: str
    account_key: str


class LoginThrottle:
    """Failed-login counts per address and per account (see the module docstring)."""

    def __init__(
        self,
        *,
        free_per_address: int = 10,
        free_per_account: int = 5,
        base: float = 4.0,
        cap: float = 15 * 60.0,
        forget_after: float = 3600.0,
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.free = {"address": free_per_address, "account": free_per_account}
        self.base = base
        self.cap = cap
        self.forget_after = forget_after
        self.max_keys = max_keys
        self.clock = clock
        self._records: OrderedDict[str, _Record] = OrderedDict()

    @staticmethod
    def keys(address: str, username: str) -> tuple[str, str]:
        """The two keys an attempt counts against (usernames compared case-insensitively, so
        ``Alice`` and ``alice`` share one budget)."""
        return f"address:{address}", f"account:{username.strip().casefold()}"

    def begin(self, address: str, username: str) -> Attempt | Refusal:
        """Refuse if either key is closed; otherwise count the attempt and let it go ahead."""
        now = self.clock()
        self._forget_idle(now)
        address_key, account_key = self.keys(address, username)
        closed = max(self._closed_until(address_key), self._closed_until(account_key))
        if closed > now:
            return Refusal(retry_after=max(1, math.ceil(closed - now)), at=closed)
        self._fail(address_key, "address", now)
        self._fail(account_key, "account", now)
        return Attempt(address_key, account_key)

    def succeeded(self, attempt: Attempt) -> None:
        """The password was right: the account starts afresh, the address gets its try back."""
        self._records.pop(attempt.account_key, None)
        record = self._records.get(attempt.address_key)
        if record is not None:
            record.failures = max(0, record.failures - 1)
            if record.failures < self.free["address"]:
                record.closed_until = 0.0

    def delay(self, excess: int) -> float:
        """Seconds a key stays closed after its ``excess``-th failure beyond the free ones."""
        if excess <= 0:
            return 0.0
        return min(self.cap, self.base * float(2 ** min(excess - 1, 32)))

    def _closed_until(self, key: str) -> float:
        record = self._records.get(key)
        return record.closed_until if record is not None else 0.0

    def _fail(self, key: str, kind: str, now: float) -> None:
        record = self._records.pop(key, None) or _Record()
        record.failures += 1
        record.last = now
        excess = record.failures - self.free[kind] + 1
        if excess > 0:
            record.closed_until = now + self.delay(excess)
        self._records[key] = record  # most recently used last
        while len(self._records) > self.max_keys:
            self._records.popitem(last=False)

    def _forget_idle(self, now: float) -> None:
        """Drop keys neither failing nor closed for ``forget_after`` (oldest first)."""
        while self._records:
            key, record = next(iter(self._records.items()))
            if now - record.last < self.forget_after or record.closed_until > now:
                break
            del self._records[key]
