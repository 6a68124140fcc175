"""Live updates: one ``LISTEN vidflow_status`` connection per portal process, fanned out to
every server-sent-event client through its own queue (no polling anywhere)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import psycopg

from portal.projection import NOTIFY_CHANNEL
from vidflow.logs import get_logger
from vidflow.settings import PostgresSettings

__all__ = ["NotifyHub"]

log = get_logger("vidflow.portal.live")
QUEUE_LIMIT = 1000


class NotifyHub:
    """Turns PostgreSQL notifications into per-subscriber asyncio queues of video ids."""

    def __init__(self, pg: PostgresSettings) -> None:
        self.pg = pg
        self.subscribers: set[asyncio.Queue[str]] = set()
        # told of a change before any subscriber (a shared render cache drops its stale entry)
        self.listeners: list[Callable[[str], None]] = []
        self._task: asyncio.Task[None] | None = None

    def subscribe(self) -> asyncio.Queue[str]:
        queue: asyncio.Queue[str] = asyncio.Queue(QUEUE_LIMIT)
        self.subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[str]) -> None:
        self.subscribers.discard(queue)

    def publish(self, video_id: str) -> None:
        for listener in self.listeners:
            listener(video_id)
        for queue in list(self.subscribers):
            with contextlib.suppress(asyncio.QueueFull):  # a stuck client misses updates, not us
                queue.put_nowait(video_id)

    async def _listen(self) -> None:
        delay = 0.5
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self.pg.dsn, autocommit=True
                ) as conn:
                    await conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                    delay = 0.5
                    async for notify in conn.notifies():
                        self.publish(notify.payload)
            except (psycopg.OperationalError, OSError) as exc:  # database restarts are waited for
                log.warning("LISTEN connection lost, retrying", error=str(exc), delay=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._listen())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
