"""One database read and one render per change of a video, shared by every live client.

With hundreds of open event streams, loading and rendering the row once per client per event
costs hundreds of queries and renders for one change (and empties the connection pool that
page requests need). Here the first client to ask starts the work and the others await the
same task; a new notification for the video drops the cached task, so nobody gets a stale row.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

__all__ = ["Rendered", "SharedRenders"]

CACHE_SIZE = 2048


@dataclass(frozen=True)
class Rendered:
    """What a client needs to decide whether and how to send a change."""

    owner: str
    created_ts: float
    html: str


Loader = Callable[[str, str], Awaitable[Rendered | None]]


class SharedRenders:
    """``(video id, template)`` -> one shared render task, until the video changes again."""

    def __init__(self, load: Loader) -> None:
        self._load = load
        self._tasks: OrderedDict[str, dict[str, asyncio.Task[Rendered | None]]] = OrderedDict()

    def changed(self, video_id: str) -> None:
        """Forget renders of ``video_id`` (of every video when it is empty: a resync); call
        before clients hear of the change."""
        if not video_id:
            self._tasks.clear()
        self._tasks.pop(video_id, None)

    async def get(self, video_id: str, template: str) -> Rendered | None:
        """The current render (None if the video is gone), made once for all who ask."""
        renders = self._tasks.get(video_id)
        if renders is None:
            renders = self._tasks[video_id] = {}
            while len(self._tasks) > CACHE_SIZE:
                self._tasks.popitem(last=False)
        task = renders.get(template)
        if task is None or (task.done() and (task.cancelled() or task.exception())):  # retry
            task = renders[template] = asyncio.ensure_future(self._load(video_id, template))
        if task.done():  # the common case once the first client has asked: no waiting at all
            return task.result()
        # shield: one client going away must not cancel the render the others await
        return await asyncio.shield(task)
