"""The webhook sender's settings group (``VIDFLOW_WEBHOOKS_*``), importable from
``core.settings`` like every group; its own module only to keep that one under 400 lines."""

from __future__ import annotations

import msgspec

from core.settings_env import SettingsError

__all__ = ["WebhookSettings"]


class WebhookSettings(msgspec.Struct, kw_only=True, frozen=True):
    """The webhook sender: signed POSTs of status events to the URLs users subscribed.

    Targets on loopback, private, link-local, multicast or reserved addresses are refused
    (a subscription must not turn the sender into a probe of the inside network) unless
    ``allow_private`` says this installation wants them (tests, a lab). A failed delivery is
    tried again after ``backoff_first`` seconds, then each pause ``backoff_factor`` times the
    last, until ``max_age_hours`` after it was first due.
    """

    allow_private: bool = False
    timeout: float = 10.0
    max_age_hours: float = 24.0
    # days a delivery that ended (delivered or failed) stays in the log before it is pruned
    keep_days: float = 30.0
    backoff_first: float = 10.0
    backoff_factor: float = 3.0
    # due deliveries are looked for this often, between Kafka polls
    poll_interval: float = 0.5
    # POSTs in flight at once: a receiver that never answers holds one, not the sender
    concurrency: int = 8

    def __post_init__(self) -> None:
        if self.timeout <= 0 or self.backoff_first <= 0 or self.backoff_factor < 1:
            raise SettingsError(
                "VIDFLOW_WEBHOOKS_TIMEOUT and _BACKOFF_FIRST must be positive and "
                "VIDFLOW_WEBHOOKS_BACKOFF_FACTOR at least 1."
            )
        if self.max_age_hours <= 0 or self.concurrency < 1 or self.keep_days <= 0:
            raise SettingsError(
                "VIDFLOW_WEBHOOKS_MAX_AGE_HOURS and _KEEP_DAYS must be positive and "
                "_CONCURRENCY at least 1."
            )
