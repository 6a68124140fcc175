"""The shared render cache: one load per change however many clients ask."""

from __future__ import annotations

import asyncio

import pytest

from portal.fanout import Rendered, SharedRenders


def test_many_clients_share_one_load_until_the_video_changes() -> None:
    loads: list[str] = []

    async def load(video_id: str, template: str) -> Rendered | None:
        loads.append(video_id)
        await asyncio.sleep(0.01)
        return Rendered("owner", 1.0, f"<tr>{video_id} {len(loads)}</tr>")

    async def scenario() -> None:
        renders = SharedRenders(load)
        first = await asyncio.gather(*(renders.get("v", "row") for _ in range(200)))
        assert loads == ["v"] and {r.html for r in first if r} == {"<tr>v 1</tr>"}
        renders.changed("v")
        again = await renders.get("v", "row")
        assert again is not None and again.html == "<tr>v 2</tr>" and loads == ["v", "v"]

    asyncio.run(scenario())


def test_a_failed_load_is_tried_again() -> None:
    attempts: list[int] = []

    async def load(video_id: str, template: str) -> Rendered | None:
        attempts.append(1)
        if len(attempts) == 1:
            raise ConnectionError("database restarting")
        return None

    async def scenario() -> None:
        renders = SharedRenders(load)
        with pytest.raises(ConnectionError):
            await renders.get("v", "row")
        assert await renders.get("v", "row") is None and len(attempts) == 2

    asyncio.run(scenario())
