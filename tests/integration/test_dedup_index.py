"""Issue 13, whole-file dedup against a delete: the index is a hint, the manifests the record.

A new video adopts stored bytes only if, after its manifest names them, the index entry and the
bytes are still there; a delete drops the entry before it decides. So a delete racing an
adoption never leaves a manifest naming bytes that are gone, and a stale or forged entry is
never believed. Real MinIO.
"""

from __future__ import annotations

import hashlib
import io

import pytest

from connectors.storage import make_client
from core import events as ev
from core.layout import ObjectLayout
from core.settings import Settings
from dataflows.ingest.dedup import adopt
from dataflows.source_index import SourceIndex

pytestmark = pytest.mark.integration

DATA = b"the same file, sent twice" * 1000
SHA = hashlib.sha256(DATA).hexdigest()


def manifest(video_id: str, key: str) -> ev.Manifest:
    chunk = ev.ChunkRef(index=0, offset=0, size=len(DATA), sha256=SHA)
    return ev.Manifest(
        video_id=video_id, size=len(DATA), chunks=[chunk], composite_sha256=f"{SHA}-1",
        sha256=SHA, source_key=key,
    )  # fmt: skip


def put(settings: Settings, key: str, data: bytes) -> None:
    client = make_client(settings.storage)
    client.put_object(settings.storage.bucket, key, io.BytesIO(data), len(data))


def test_an_adoption_racing_a_delete_keeps_its_own_bytes(isolated_settings: Settings) -> None:
    layout = ObjectLayout(isolated_settings.storage)
    client, bucket = make_client(isolated_settings.storage), isolated_settings.storage.bucket
    index = SourceIndex(client, bucket, layout)
    first, second = layout.incoming("first-upload"), layout.incoming("second-upload")
    put(isolated_settings, first, DATA)
    put(isolated_settings, second, DATA)
    index.remember(SHA, first)
    written: list[str] = []

    def write_while_the_first_is_deleted(key: str) -> ev.Manifest:
        written.append(key)
        if len(written) == 1:  # the delete of the first video, between write and re-check
            index.forget(SHA)
            client.remove_object(bucket, first)
        return manifest("second", key)

    named, shared = adopt(index, SHA, second, len(DATA), write_while_the_first_is_deleted)
    assert written == [first, second]  # it named the first's bytes, then saw them go
    assert (named.source_key, shared) == (second, False)
    assert index.existing_source_for(SHA, len(DATA)) == second  # the index names its bytes now

    named, shared = adopt(
        index, SHA, layout.incoming("third"), len(DATA), lambda k: manifest("third", k)
    )
    assert (named.source_key, shared) == (second, True)


def test_a_stale_or_forged_index_entry_is_not_believed(isolated_settings: Settings) -> None:
    layout = ObjectLayout(isolated_settings.storage)
    client, bucket = make_client(isolated_settings.storage), isolated_settings.storage.bucket
    index = SourceIndex(client, bucket, layout)
    victim_chunk = layout.chunk(SHA)
    put(isolated_settings, victim_chunk, DATA)
    for entry in (victim_chunk, layout.incoming("gone"), "../../etc/passwd", "x" * 5000):
        put(isolated_settings, layout.by_sha256(SHA), entry.encode())
        assert index.existing_source_for(SHA) is None, entry
    put(isolated_settings, layout.source("short"), DATA[:-1])
    index.remember(SHA, layout.source("short"))
    assert index.existing_source_for(SHA, len(DATA)) is None  # another size: not these bytes
    own = layout.incoming("own")
    named, shared = adopt(index, SHA, own, len(DATA), lambda k: manifest("own", k))
    assert (named.source_key, shared) == (own, False)
    assert client.stat_object(bucket, victim_chunk).size == len(DATA)  # untouched
