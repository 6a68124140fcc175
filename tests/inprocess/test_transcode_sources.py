"""Issue 13: the transcode flow reads a video's bytes where its manifest says, never where an
event says: a source of the earlier layout (``chunks/`` composed into ``sources/{video}/source``,
a manifest with no ``source_key``) still reprocesses; a video whose manifest names an upload (or
an identical file's bytes) is transcoded from it; a manifest naming any other object is never
read. Real MinIO and FFmpeg, Kafka scripted (see ``test_transcode_flow``).
"""

from __future__ import annotations

import hashlib
import io
import uuid
from pathlib import Path

import msgspec
import pytest

from connectors.ffmpeg import probe
from core import events as ev
from core.jobs import reprocess_request
from core.settings import Settings
from dataflows.ingest.chunking import composite_sha256
from tests.inprocess.harness import Until
from tests.inprocess.test_transcode_flow import WAIT, Transcode
from tests.inprocess.test_transcode_flow import clip as clip  # a fixture
from tests.inprocess.test_transcode_flow import tc_settings as tc_settings  # a fixture

pytestmark = pytest.mark.integration  # real MinIO and FFmpeg


def _put(run: Transcode, key: str, data: bytes) -> None:
    run.client.put_object(run.settings.storage.bucket, key, io.BytesIO(data), len(data))


def _chunks(data: bytes, pieces: int) -> list[ev.ChunkRef]:
    step = -(-len(data) // pieces)
    starts = enumerate(range(0, len(data), step))
    cut = [(i, off, data[off : off + step]) for i, off in starts]
    return [
        ev.ChunkRef(index=i, offset=off, size=len(b), sha256=hashlib.sha256(b).hexdigest())
        for i, off, b in cut
    ]


def _manifest_body(video_id: str, data: bytes, source_key: str | None) -> bytes:
    """A manifest as ingest writes it; ``None``: as the earlier layout wrote it, no key at all."""
    chunks = _chunks(data, 3)
    fields = {
        "video_id": video_id, "size": len(data), "chunks": msgspec.to_builtins(chunks),
        "composite_sha256": composite_sha256(c.sha256 for c in chunks),
        "sha256": hashlib.sha256(data).hexdigest(),
    }  # fmt: skip
    if source_key is not None:
        fields["source_key"] = source_key
    return msgspec.json.encode(fields)


def _reprocess(
    run: Transcode, video_id: str, data: bytes, known: ev.Probe
) -> ev.TranscodeRequested:
    """What the portal's Reprocess button sends (its row names the video's own source)."""
    return reprocess_request(
        run.settings, video_id=video_id, source_key=run.layout.source(video_id), size=len(data),
        sha256=hashlib.sha256(data).hexdigest(), probe=known, profile="test",
    )  # fmt: skip


def _finished(run: Transcode, *video_ids: str) -> Until:
    def done() -> bool:
        ended = {e.video_id for e in run.statuses(ev.JobCompleted)}
        ended |= {e.video_id for e in run.statuses(ev.JobFailed)}
        return set(video_ids) <= ended

    return Until(done, WAIT, "every job ended")


def test_sources_of_the_earlier_layout_and_shared_sources_transcode_a_forged_one_never_reads(
    workers: int, tc_settings: Settings, clip: Path
) -> None:
    run = Transcode(tc_settings)
    data, known = clip.read_bytes(), probe(str(clip))
    legacy, legacy_keyed, shared, forged = (uuid.uuid4().hex for _ in range(4))
    # the earlier layout: content-addressed chunks composed into the video's own source
    for chunk in _chunks(data, 3):
        _put(run, run.layout.chunk(chunk.sha256), data[chunk.offset : chunk.offset + chunk.size])
    for video_id, key in ((legacy, None), (legacy_keyed, run.layout.source(legacy_keyed))):
        _put(run, run.layout.source(video_id), data)
        _put(run, run.layout.manifest(video_id), _manifest_body(video_id, data, key))
    # an upload that became the source (or an identical file's bytes): nothing under sources/
    upload = run.layout.incoming(uuid.uuid4().hex)
    _put(run, upload, data)
    _put(run, run.layout.manifest(shared), _manifest_body(shared, data, upload))
    # a manifest naming an object that holds no source: a chunk that happens to be a whole clip
    whole_chunk = run.layout.chunk(hashlib.sha256(data).hexdigest())
    _put(run, whole_chunk, data)
    _put(run, run.layout.manifest(forged), _manifest_body(forged, data, whole_chunk))
    videos = (legacy, legacy_keyed, shared, forged)
    for video_id in videos:
        run.script.send(run.jobs, _reprocess(run, video_id, data, known))
    run.script.then(_finished(run, *videos))

    run.run(workers)

    completed = {e.video_id: e for e in run.statuses(ev.JobCompleted)}
    assert set(completed) == {legacy, legacy_keyed, shared}
    for video_id in (legacy, legacy_keyed, shared):
        done = completed[video_id]
        assert [r.height for r in done.renditions] == [240, 180, 144]
        for r in done.renditions:
            assert run.client.stat_object(run.settings.storage.bucket, r.key).size
    [failed] = [e for e in run.statuses(ev.JobFailed) if e.video_id == forged]
    assert "source" in failed.reason or "FFmpeg" in failed.reason
    assert run.keys(run.layout.rendition(forged, 0).rsplit("/", 1)[0] + "/") == []
    letters = run.out.events(run.dlq)  # the requests were valid (validate), the manifest not
    assert [(d.original_key, d.stage) for d in letters] == [(forged, "transcode")]
    assert run.keys(run.layout.source(shared)) == []  # read from the upload, never copied
