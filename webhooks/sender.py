"""The webhook sender: ``vidflow.status`` in its own consumer group, deliveries out over HTTP.

Two jobs share one loop. Queuing: each status event is matched to the subscriptions of its
video's owner for its type, and one delivery row per match is written; the consumer commits
its offsets only after those rows are committed (at least once: a crash in between queues the
same rows again, which the store drops as duplicates). Sending: due deliveries are claimed from
the table (so retries survive a restart) and POSTed by a small pool of threads, so a receiver
that never answers holds one thread for the timeout, never the consumer nor the other
receivers. A failed POST is due again after an exponentially growing pause until the
delivery's window (24 hours by default) is over. Its own consumer group means a slow receiver
never slows the portal's projector.
"""

from __future__ import annotations

import signal
import threading
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import httpx
import msgspec
from confluent_kafka import Consumer, Message
from prometheus_client import Counter
from sqlalchemy import Connection, Engine
from sqlalchemy import exc as sa_exc

from connectors import webhook_store as store
from connectors.db import engine as make_engine
from connectors.kafka import make_consumer
from connectors.webhook_targets import Target, TargetRefused, resolve_target
from core import events as ev
from core.errors import public_reason
from core.logs import get_logger
from core.settings import Settings, WebhookSettings
from webhooks.signing import signed_headers

__all__ = ["Sender", "group_for", "next_attempt", "payload", "webhook_id"]

log = get_logger("vidflow.webhooks")
SESSION_TIMEOUT_MS = 10_000
# the longest pause between two tries: a day-long window still gets several late ones
MAX_PAUSE = 6 * 3600.0
PRUNE_EVERY = 3600.0  # seconds between prunes of the deliveries that ended long ago
LEASE_MARGIN = timedelta(seconds=30)  # a claimed delivery is not due again before its POST ends
_MSG_NAMESPACE = uuid.UUID("0b7e3f0a-6a52-4a5e-9d0b-2f4c7d1e8a31")
OUTCOMES = Counter(
    "vidflow_webhook_attempts_total", "POSTs of webhook deliveries, by outcome", ["outcome"]
)
QUEUED = Counter("vidflow_webhook_deliveries_total", "Webhook deliveries queued")


def group_for(settings: Settings) -> str:
    """The sender's consumer group: its own, never the projector's."""
    return f"vidflow-webhooks.{settings.kafka.topic_status}"


def webhook_id(subscription_id: int, event_id: str) -> str:
    """The ``webhook-id`` of an event for a subscription: the same on every retry, and free of
    ``.`` (the scheme joins id, time and body with dots)."""
    return "msg_" + uuid.uuid5(_MSG_NAMESPACE, f"{subscription_id}\x1f{event_id}").hex


def payload(event: ev.StatusBase) -> bytes:
    """The POSTed body: ``type``, ``timestamp`` (ISO 8601) and the event itself as ``data``."""
    when = datetime.fromtimestamp(event.ts, UTC).isoformat().replace("+00:00", "Z")
    return msgspec.json.encode(
        {"type": event.type, "timestamp": when, "data": msgspec.to_builtins(event)}
    )


def next_attempt(
    w: WebhookSettings, attempts: int, now: datetime, expires_at: datetime
) -> datetime | None:
    """When to try again after ``attempts`` failed POSTs: ``backoff_first``, then each pause
    ``backoff_factor`` times the last (at most :data:`MAX_PAUSE`), the last try at the end of
    the delivery's window; None once the window is over: it has failed for good."""
    if now >= expires_at:
        return None
    pause = min(w.backoff_first * w.backoff_factor ** max(attempts - 1, 0), MAX_PAUSE)
    return min(now + timedelta(seconds=pause), expires_at)


class Sender:
    """Queues deliveries for status events and POSTs the due ones."""

    def __init__(self, settings: Settings, engine: Engine | None = None) -> None:
        self.settings = settings
        self.w = settings.webhooks
        self.engine = engine or make_engine(settings.postgres)
        self.consumer: Consumer = make_consumer(
            settings.kafka, group_for(settings), **{"session.timeout.ms": SESSION_TIMEOUT_MS}
        )
        # no proxies from the environment (they would bypass the target check), no redirects
        self.http = httpx.Client(timeout=self.w.timeout, follow_redirects=False, trust_env=False)
        self.pool = ThreadPoolExecutor(self.w.concurrency, thread_name_prefix="webhook")
        self.in_flight: set[Future[None]] = set()
        self.stop = threading.Event()

    # ------------------------------------------------------------ queuing

    def queue_batch(self, messages: list[Message]) -> int:
        """Write the deliveries of ``messages`` in one transaction; how many were new."""
        queued = 0
        with self.engine.begin() as conn:
            for message in messages:
                event = ev.try_decode(message.value(), "status")
                if isinstance(event, ev.DecodeError):
                    # the projector dead-letters it; there is nothing here to notify about
                    log.info("undecodable status message skipped", error=str(event))
                    continue
                queued += self._queue_one(conn, event)
        QUEUED.inc(queued)
        return queued

    def _queue_one(self, conn: Connection, event: ev.AnyEvent) -> int:
        if not isinstance(event, ev.StatusBase):
            return 0
        if isinstance(event, ev.IngestStarted) and event.owner:
            store.remember_owner(conn, event.video_id, event.owner)
        owner = store.owner_of(conn, event.video_id)
        if not owner:
            return 0
        # a subscription made a little after the event (producers' clocks) still gets it
        happened = datetime.fromtimestamp(event.ts, UTC) + timedelta(seconds=60)
        subscriptions = store.matching(conn, owner, event.type, happened)
        if not subscriptions:
            return 0
        body = payload(event)
        now = datetime.now(UTC)
        max_age = timedelta(hours=self.w.max_age_hours)
        return sum(
            store.enqueue(
                conn,
                sub,
                event_id=event.id,
                event_type=event.type,
                video_id=event.video_id,
                msg_id=webhook_id(sub.id, event.id),
                body=body,
                due=now,
                max_age=max_age,
            )
            for sub in subscriptions
        )

    def poll_once(self, timeout: float) -> int:
        """One batch from Kafka into delivery rows, then the offsets committed."""
        first = self.consumer.poll(timeout)
        if first is None:
            return 0
        arrived = [first, *self.consumer.consume(499, 0)]
        messages = [m for m in arrived if m.error() is None]
        queued = self._until_stored(messages)
        if queued is None:
            return 0
        self.consumer.commit(asynchronous=False)
        return queued

    def _until_stored(self, messages: list[Message]) -> int | None:
        """:meth:`queue_batch`, retried while the database is away; None once stopped (the
        batch is not committed, so the next start reads it again)."""
        pause = 0.5
        while True:
            try:
                return self.queue_batch(messages)
            except (sa_exc.OperationalError, sa_exc.InterfaceError) as exc:
                # the database away: wait, never drop; anything else is a bug and stops us
                log.warning("deliveries not queued, retrying", error=repr(exc), pause=pause)
                if self.stop.wait(pause):
                    return None
                pause = min(pause * 2, 10.0)

    # ------------------------------------------------------------ sending

    def send_due(self) -> int:
        """Claim the due deliveries there is room for and hand them to the pool."""
        self.in_flight = {f for f in self.in_flight if not f.done()}
        room = self.w.concurrency - len(self.in_flight)
        if room <= 0:
            return 0
        lease = timedelta(seconds=self.w.timeout) + LEASE_MARGIN
        with self.engine.begin() as conn:
            due = store.claim_due(conn, datetime.now(UTC), lease, room)
        for delivery in due:
            self.in_flight.add(self.pool.submit(self.deliver, delivery))
        return len(due)

    def deliver(self, d: store.DueDelivery) -> None:
        """POST one delivery and record the attempt (never raises: it runs in the pool)."""
        started = time.monotonic()
        status: int | None = None
        try:
            target = resolve_target(d.url, allow_private=self.w.allow_private)
            headers = signed_headers(d.secret, d.msg_id, int(time.time()), d.body)
            status = self._post(target, headers, d.body)
            error = "" if 200 <= status < 300 else public_reason(f"the receiver answered {status}")
        except TargetRefused as exc:
            error = public_reason("target refused", str(exc))
        except httpx.TimeoutException:
            error = public_reason(f"no answer within {self.w.timeout:g} s")
        except httpx.ConnectError:
            error = public_reason("could not connect to the receiver")
        except Exception as exc:  # noqa: BLE001 - any failure is a failed attempt, retried
            error = public_reason("the request failed", type(exc).__name__)
            log.warning("webhook POST failed", delivery=d.id, error=repr(exc))
        ok = not error
        now = datetime.now(UTC)
        retry_at = None if ok else next_attempt(self.w, d.attempts + 1, now, d.expires_at)
        OUTCOMES.labels("delivered" if ok else ("retry" if retry_at else "failed")).inc()
        try:
            with self.engine.begin() as conn:
                store.record_attempt(
                    conn,
                    d.id,
                    at=now,
                    ok=ok,
                    status_code=status,
                    error=error,
                    duration_ms=int((time.monotonic() - started) * 1000),
                    retry_at=retry_at,
                )
        except Exception as exc:  # noqa: BLE001 - the lease runs out and it is sent again
            log.warning("webhook attempt not recorded", delivery=d.id, error=repr(exc))

    def _post(self, target: Target, headers: dict[str, str], body: bytes) -> int:
        """POST to the addresses that were checked, in order until one connects: never to a
        fresh lookup of the name. The name stays in the Host header and, over TLS, in SNI and
        the certificate check."""
        extensions = {"sni_hostname": target.sni_hostname} if target.scheme == "https" else {}
        for i, address in enumerate(target.addresses):
            request = self.http.build_request(
                "POST",
                target.connect_url(address),
                content=body,
                headers={**headers, "host": target.host_header},
                extensions=extensions,
            )
            try:
                # only the status matters: the body is never read, so a receiver cannot hold
                # the thread (or the memory) by sending one slowly, or a large one
                response = self.http.send(request, stream=True)
            except httpx.ConnectError:
                if i == len(target.addresses) - 1:
                    raise
                continue
            response.close()
            return response.status_code
        raise httpx.ConnectError("no address to connect to")

    def prune(self) -> int:
        """Drop deliveries that ended more than ``keep_days`` ago (their attempts too); a
        database away is tried again at the next prune, never stopping the sender."""
        before = datetime.now(UTC) - timedelta(days=self.w.keep_days)
        try:
            with self.engine.begin() as conn:
                pruned = store.prune_finished(conn, before)
        except Exception as exc:  # noqa: BLE001 - the database away: next time
            log.warning("old deliveries not pruned", error=repr(exc))
            return 0
        if pruned:
            log.info("old deliveries pruned", count=pruned, before=before.isoformat())
        return pruned

    # ------------------------------------------------------------ the loop

    def run(self, stop: threading.Event | None = None) -> None:
        """Queue and send until ``stop`` is set (or SIGTERM/SIGINT in the main thread)."""
        stop = stop or self.stop
        self.stop = stop
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGTERM, signal.SIGINT):
                signal.signal(signum, lambda *_: stop.set())
        self.consumer.subscribe([self.settings.kafka.topic_status])
        log.info("sending webhooks", topic=self.settings.kafka.topic_status)
        next_prune = 0.0
        try:
            while not stop.is_set():
                if time.monotonic() >= next_prune:
                    self.prune()
                    next_prune = time.monotonic() + PRUNE_EVERY
                self.poll_once(self.w.poll_interval)
                try:
                    self.send_due()
                except Exception as exc:  # noqa: BLE001 - the database away: next round
                    log.warning("due deliveries not claimed", error=repr(exc))
                    stop.wait(1.0)
        finally:
            self.consumer.close()
            self.pool.shutdown(wait=True, cancel_futures=False)
            self.http.close()
