"""Live updates: one ``LISTEN vidflow_status`` connection per portal process, fanned out to
every server-sent-event client through its own queue (no polling anywhere).

Notifications sent while the connection is down are lost (PostgreSQL does not queue them for
a listener that is gone), so after every (re)connect the hub publishes :data:`RESYNC`: each
subscriber then sends again what changed since :attr:`NotifyHub.lost_at`. Whatever fails (the
database, a listener, anything unexpected) is logged and the connection is made again; the
task only ends when the hub is stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

import psycopg

from core.logs import get_logger
from core.settings import PostgresSettings
from portal.projection import NOTIFY_CHANNEL

__all__ = ["RESYNC", "NotifyHub"]

log = get_logger("vidflow.portal.live")
QUEUE_LIMIT = 1000
RESYNC = ""  # not a video id: "you may have missed changes since ``lost_at``"
MAX_DELAY = 10.0


class NotifyHub:
    """Turns PostgreSQL notifications into per-subscriber asyncio queues of video ids."""

    def __init__(self, pg: PostgresSettings) -> None:
        self.pg = pg
        self.subscribers: set[asyncio.Queue[str]] = set()
        # told of a change before any subscriber (a shared render cache drops its stale entry)
        self.listeners: list[Callable[[str], None]] = []
        self._task: asyncio.Task[None] | None = None
        self.lost_at = time.time()  # since when notifications may have been missed
        self.listening = asyncio.Event()  # set while a LISTEN connection is up
        self.connects = 0

    def subscribe(self) -> asyncio.Queue[str]:
        queue: asyncio.Queue[str] = asyncio.Queue(QUEUE_LIMIT)
        self.subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[str]) -> None:
        self.subscribers.discard(queue)

    def publish(self, video_id: str) -> None:
        for listener in self.listeners:
            try:
                listener(video_id)
            except Exception:  # one broken listener must not stop the others or the LISTEN
                log.exception("notification listener failed", video_id=video_id)
        for queue in list(self.subscribers):
            with contextlib.suppress(asyncio.QueueFull):  # a stuck client misses updates, not us
                queue.put_nowait(video_id)

    async def _listen_once(self) -> None:
        async with await psycopg.AsyncConnection.connect(self.pg.dsn, autocommit=True) as conn:
            await conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
            self.connects += 1
            self.listening.set()
            self.publish(RESYNC)  # whatever happened while nobody listened is sent again
            async for notify in conn.notifies():
                self.publish(notify.payload)

    async def _listen(self) -> None:
        delay = 0.5
        while True:
            started = time.monotonic()
            try:
                await self._listen_once()
            except (psycopg.OperationalError, OSError) as exc:  # database restarts are waited for
                log.warning("LISTEN connection lost, retrying", error=str(exc), delay=delay)
            except Exception:  # anything else is a bug to see in the log, not a silent end
                log.exception("LISTEN task failed, restarting", delay=delay)
            self.listening.clear()
            self.lost_at = time.time()
            if time.monotonic() - started > 60:
                delay = 0.5  # it ran for a while: this is a new failure, not the same one
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_DELAY)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._listen())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
