"""Issue 12 on a real MinIO: what the end of a unit's encode costs. Every request the publishing
child sends after FFmpeg exits is on the way to ``job.completed``, so the temporaries a track
was published live with go in one request, not a DELETE each."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from minio import Minio

from connectors.storage import make_client
from core.layout import ObjectLayout
from core.settings import Settings
from dataflows.transcode.outputs import RenditionStore

pytestmark = pytest.mark.integration


class CountingClient:
    """The real client, counting the calls made through it by method name."""

    def __init__(self, client: Minio) -> None:
        self.client, self.calls = client, Counter[str]()

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.client, name)
        if not callable(method):
            return method

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            return method(*args, **kwargs)

        return counted


def _store(settings: Settings) -> tuple[RenditionStore, CountingClient]:
    client = CountingClient(make_client(settings.storage))
    layout = ObjectLayout(settings.storage)
    store = RenditionStore(client, settings.storage.bucket, layout, "v1", "j1")  # type: ignore[arg-type]
    return store, client


def test_a_tracks_temporaries_go_in_one_request(isolated_settings: Settings) -> None:
    store, client = _store(isolated_settings)
    layout: Callable[[str], str] = lambda n: store.layout.live_segment("v1", "240p", n)  # noqa: E731
    names = ["init.mp4"] + [f"{n}.m4s" for n in range(40)]
    for name in names:
        store.put_bytes(layout(name), b"fragment " + name.encode(), "video/iso.segment")
    other = store.layout.live_segment("v1", "360p", "0.m4s")
    store.put_bytes(other, b"another track's", "video/iso.segment")
    client.calls.clear()

    removed = store.remove_live("240p")

    assert sorted(removed) == sorted(layout(name) for name in names)
    prefix = store.layout.live_dir("v1", "240p") + "/"
    bucket = isolated_settings.storage.bucket
    assert list(client.client.list_objects(bucket, prefix, recursive=True)) == []
    assert client.client.stat_object(bucket, other).size == len(b"another track's")
    assert client.calls["remove_object"] == 0
    assert client.calls["remove_objects"] == 1
