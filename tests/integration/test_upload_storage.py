"""Issue 13, the upload path: an uploaded file is stored once and identical files share bytes.

Before, an upload was stored three times: as uploaded (``incoming/``), as ``chunks/{sha256}``,
and composed again as ``sources/{video}/source``. Now the uploaded object is the source: ingest
reads it once by ranges to hash and index it, and its manifest names it. A second file with the
same SHA-256 stores nothing (its manifest names the first one's bytes, its upload is removed),
and deleting either video keeps the bytes the other still names. Real Kafka, MinIO and FFmpeg;
the ingest flow runs as a child process like production.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import msgspec
import pytest

from connectors.ffmpeg import probe
from connectors.storage import make_client
from core import events as ev
from core.ids import upload_video_id
from core.layout import ObjectLayout
from core.settings import Settings
from dataflows.source_index import SourceIndex
from dataflows.transcode.purge import purge_video
from dataflows.transcode.sources import SourceLocator
from tests.flows import FlowProcess, TopicReader
from tests.integration.test_ingest_flow import Writer, announce_upload, put_upload, wait_done
from tests.integration.test_ingest_flow import flow as flow  # a fixture
from tests.integration.test_ingest_flow import ingest_settings as ingest_settings  # a fixture
from tests.integration.test_ingest_flow import status as status  # a fixture
from tests.media import raw_clip

pytestmark = pytest.mark.integration

MANIFEST_MAX = 16 * 1024  # a manifest and an index entry: a few KiB, never a copy of the bytes


def sizes(settings: Settings) -> dict[str, int]:
    """Every object of the bucket and its size."""
    client = make_client(settings.storage)
    found = client.list_objects(settings.storage.bucket, recursive=True)
    return {str(o.object_name): int(o.size or 0) for o in found}


def completed_of(events: list[ev.AnyEvent]) -> ev.IngestCompleted:
    return next(e for e in events if isinstance(e, ev.IngestCompleted))


def read(settings: Settings, key: str, offset: int = 0, length: int = 0) -> bytes:
    client = make_client(settings.storage)
    response = client.get_object(settings.storage.bucket, key, offset=offset, length=length)
    try:
        return response.read()
    finally:
        response.close()
        response.release_conn()


def stored_manifest(settings: Settings, video_id: str) -> ev.Manifest:
    body = read(settings, ObjectLayout(settings.storage).manifest(video_id))
    return msgspec.json.decode(body, type=ev.Manifest)


def test_an_upload_is_stored_once_its_object_is_the_source(
    ingest_settings: Settings, flow: FlowProcess, status: TopicReader, tmp_path: Path
) -> None:
    """After ingest the bucket holds one object of the file's size (the upload) plus the
    manifest: no ``chunks/`` objects, no composed copy; each chunk is still fetched by its
    range and verified by its digest, and the job request names the video's own source."""
    layout = ObjectLayout(ingest_settings.storage)
    data = raw_clip(tmp_path / "once.mkv", seconds=4).read_bytes()
    assert len(data) > 2 * ingest_settings.ingest.chunk_size  # three chunks or more
    before = sizes(ingest_settings)
    upload = put_upload(ingest_settings, data, "once.mkv")
    jobs = TopicReader(ingest_settings, ingest_settings.kafka.topic_jobs)
    try:
        announce_upload(ingest_settings, upload)
        manifest = completed_of(wait_done(status, flow, "once.mkv")).manifest
        [request] = jobs.wait_for(lambda es: len(es) >= 1, 30, flow)
    finally:
        jobs.close()
    video_id = upload_video_id(upload.upload_id)

    added = {k: v for k, v in sizes(ingest_settings).items() if k not in before}
    assert manifest.source_key == upload.key
    assert [k for k, size in added.items() if size >= len(data) // 2] == [upload.key]
    assert added[upload.key] == len(data)
    assert layout.manifest(video_id) in added
    assert not [k for k in added if k.startswith(layout.chunk(""))]
    assert layout.source(video_id) not in added
    overhead = sum(added.values()) - len(data)
    assert 0 < overhead <= MANIFEST_MAX, added
    assert stored_manifest(ingest_settings, video_id) == manifest
    assert manifest.sha256 == hashlib.sha256(data).hexdigest()
    assert len(manifest.chunks) >= 3
    for chunk in manifest.chunks:
        piece = read(ingest_settings, manifest.source_key, chunk.offset, chunk.size)
        assert hashlib.sha256(piece).hexdigest() == chunk.sha256
        assert piece == data[chunk.offset : chunk.offset + chunk.size]
    assert isinstance(request, ev.TranscodeRequested)
    assert request.source.key == layout.source(video_id)  # the flow reads where the manifest says


def test_an_identical_upload_stores_no_bytes_and_deleting_either_keeps_the_other(
    ingest_settings: Settings, flow: FlowProcess, status: TopicReader, tmp_path: Path
) -> None:
    """Whole-file dedup: the second file's manifest names the first's bytes and its own upload
    is removed; deleting the first keeps the bytes the second names (it still probes and reads
    back whole); deleting the second then removes them and the index entry; a replayed
    announcement of the second completes again from its manifest, without failing."""
    client = make_client(ingest_settings.storage)
    bucket = ingest_settings.storage.bucket
    layout = ObjectLayout(ingest_settings.storage)
    data = raw_clip(tmp_path / "same.mkv", seconds=2).read_bytes()
    first = put_upload(ingest_settings, data, "first.mkv")
    announce_upload(ingest_settings, first)
    one = completed_of(wait_done(status, flow, "first.mkv")).manifest
    after_first = sizes(ingest_settings)

    second = put_upload(ingest_settings, data, "second.mkv")
    announce_upload(ingest_settings, second)
    two = completed_of(wait_done(status, flow, "second.mkv")).manifest
    after_second = sizes(ingest_settings)

    assert one.source_key == first.key and two.source_key == first.key
    assert two.sha256 == one.sha256 == hashlib.sha256(data).hexdigest()
    assert second.key not in after_second  # its upload is gone: no second copy
    added = {k: v for k, v in after_second.items() if k not in after_first}
    assert set(added) == {layout.manifest(two.video_id)}
    assert sum(added.values()) <= MANIFEST_MAX

    announce_upload(ingest_settings, second)  # replayed: its upload is gone, its manifest is not
    status.wait_for(
        lambda es: sum(isinstance(e, ev.IngestCompleted) and e.video_id == two.video_id
                       for e in es) >= 2, 60, flow,
    )  # fmt: skip
    again = [e for e in status.events if getattr(e, "video_id", "") == two.video_id]
    assert not [e for e in again if isinstance(e, ev.JobFailed)]
    assert [e.manifest for e in again if isinstance(e, ev.IngestCompleted)] == [two, two]

    purge_video(client, bucket, layout, one.video_id)
    left = sizes(ingest_settings)
    assert layout.manifest(one.video_id) not in left
    assert left[first.key] == len(data)  # the second video's bytes stay
    locator = SourceLocator(client, bucket, layout)
    key = locator.source_key(two.video_id, layout.source(two.video_id))
    assert key == first.key
    assert hashlib.sha256(read(ingest_settings, key)).hexdigest() == two.sha256
    assert probe(client.presigned_get_object(bucket, key)).duration > 1
    assert SourceIndex(client, bucket, layout).existing_source_for(two.sha256) == first.key

    purge_video(client, bucket, layout, two.video_id)
    left = sizes(ingest_settings)
    assert first.key not in left and layout.manifest(two.video_id) not in left
    assert layout.by_sha256(two.sha256) not in left
    assert not [k for k in left if one.video_id in k or two.video_id in k]


def test_a_watched_file_identical_to_an_upload_keeps_no_source_of_its_own(
    ingest_settings: Settings, flow: FlowProcess, status: TopicReader, tmp_path: Path
) -> None:
    """Whole-file dedup across both paths: a watched file whose SHA-256 an uploaded source has
    ends with a manifest naming the upload and no ``sources/{video}/source`` of its own."""
    layout = ObjectLayout(ingest_settings.storage)
    data = raw_clip(tmp_path / "both.mkv", seconds=1).read_bytes()
    upload = put_upload(ingest_settings, data, "uploaded.mkv")
    announce_upload(ingest_settings, upload)
    uploaded = completed_of(wait_done(status, flow, "uploaded.mkv")).manifest
    watched_path = tmp_path / "watched.mkv"
    watched_path.write_bytes(data)
    Writer(ingest_settings, watched_path).announce()
    watched = completed_of(wait_done(status, flow, "watched.mkv")).manifest

    assert uploaded.source_key == upload.key
    assert watched.source_key == upload.key and watched.sha256 == uploaded.sha256
    left = sizes(ingest_settings)
    assert layout.source(watched.video_id) not in left
    assert stored_manifest(ingest_settings, watched.video_id) == watched
    # (a watched file's chunks/ objects are the watch path's own business: issue 13, s13w)
    whole = [k for k, n in left.items() if n == len(data) and not k.startswith(layout.chunk(""))]
    assert whole == [upload.key]
