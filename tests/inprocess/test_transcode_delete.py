"""``video.delete`` in the transcode flow's graph: a running job is cancelled first, then every
object of the video goes (chunks another video's manifest lists stay), then ``video.deleted``;
a replayed delete removes nothing more and repeats the same event; an unknown video is deleted
too. Real MinIO and FFmpeg, Kafka scripted (see ``test_transcode_flow``).
"""

from __future__ import annotations

import io
import uuid
from pathlib import Path

import msgspec
import pytest

from connectors.ffmpeg import probe
from core import events as ev
from core.ids import upload_video_id
from core.settings import Settings
from tests.inprocess.harness import Do, Until
from tests.inprocess.test_transcode_flow import WAIT, Transcode
from tests.inprocess.test_transcode_flow import clip as clip  # a fixture
from tests.inprocess.test_transcode_flow import tc_settings as tc_settings  # a fixture

pytestmark = pytest.mark.integration  # real MinIO and FFmpeg


def _delete(video_id: str, by: str = "admin") -> ev.VideoDelete:
    return ev.VideoDelete(id=uuid.uuid4().hex, video_id=video_id, requested_by=by)


def _of(run: Transcode, video_id: str) -> list[str]:
    """Every key of ``video_id`` under the layout's per-video prefixes."""
    return sorted(k for p in run.layout.video_prefixes(video_id) for k in run.keys(p))


def _put(run: Transcode, key: str, data: bytes) -> None:
    run.client.put_object(run.settings.storage.bucket, key, io.BytesIO(data), len(data))


def _manifest(run: Transcode, video_id: str, digests: list[str]) -> None:
    """A manifest listing chunks ``digests`` (as ingest writes it) and those chunks."""
    chunks = [ev.ChunkRef(index=i, offset=i, size=1, sha256=d) for i, d in enumerate(digests)]
    for digest in digests:
        _put(run, run.layout.chunk(digest), b"x")
    manifest = ev.Manifest(
        video_id=video_id, size=len(chunks), chunks=chunks, composite_sha256="0" * 64 + "-1",
        sha256="0" * 64, source_key=run.layout.source(video_id, ".mp4"),
    )  # fmt: skip
    _put(run, run.layout.manifest(video_id), msgspec.json.encode(manifest))


def test_a_delete_during_an_encode_cancels_it_then_removes_every_object_of_the_video(
    workers: int, tc_settings: Settings, clip: Path
) -> None:
    run = Transcode(tc_settings)
    data, known = clip.read_bytes(), probe(str(clip))
    gone, kept = run.request(data, known), run.request(data, known)
    shared, own = "a" * 64, "b" * 64
    _manifest(run, gone.video_id, [own, shared])
    _manifest(run, kept.video_id, [shared])
    delete = _delete(gone.video_id)
    before: dict[str, list[str]] = {}
    run.script.send(run.jobs, kept)
    run.script.then(run.until(ev.JobCompleted, "the other video's job"))
    run.script.send(run.jobs, gone)
    run.script.then(
        Until(
            lambda: any(s.video_id == gone.video_id for s in run.statuses(ev.UnitStarted)),
            WAIT, "an encode of the deleted video",
        ),
        Do(lambda: before.update(bucket=run.keys(""))),
    )  # fmt: skip
    run.script.send(run.jobs, delete)
    run.script.then(run.until(ev.VideoDeleted))

    run.run(workers)

    types = [(e.type, getattr(e, "video_id", "")) for e in run.out.events(run.status)]
    cancelled = types.index(("job.cancelled", gone.video_id))
    assert cancelled < types.index(("video.deleted", gone.video_id))  # cancelled first
    [deleted] = run.statuses(ev.VideoDeleted)
    assert (deleted.video_id, deleted.run, deleted.requested_by) == (
        gone.video_id,
        delete.id,
        "admin",
    )
    assert not any(s.video_id == gone.video_id for s in run.statuses(ev.JobCompleted))
    after = run.keys("")
    assert any(gone.video_id in k for k in before["bucket"])  # its source, manifest (and more)
    assert [k for k in after if gone.video_id in k] == []  # nothing of it left
    assert run.layout.chunk(own) not in after  # its own chunk went
    assert run.layout.chunk(shared) in after  # the chunk the other video lists stayed
    others = [k for k in before["bucket"] if gone.video_id not in k and k != run.layout.chunk(own)]
    assert others and set(others) <= set(after)  # the other video untouched
    assert _of(run, kept.video_id)
    assert not run.out.events(run.dlq)


def test_a_delete_after_completion_removes_everything_and_a_replay_removes_nothing_more(
    workers: int, tc_settings: Settings, clip: Path
) -> None:
    run = Transcode(tc_settings)
    request = run.request(clip.read_bytes(), probe(str(clip)))
    _manifest(run, request.video_id, ["c" * 64])
    delete = _delete(request.video_id, by="alice")
    listed: dict[str, list[str]] = {}

    def deleted(count: int) -> Until:
        return Until(lambda: len(run.statuses(ev.VideoDeleted)) >= count, WAIT, "video.deleted")

    run.script.send(run.jobs, request)
    run.script.then(run.until(ev.JobCompleted), Do(lambda: listed.update(done=run.keys(""))))
    run.script.send(run.jobs, delete)
    run.script.then(deleted(1), Do(lambda: listed.update(deleted=run.keys(""))))
    run.script.send(run.jobs, delete)  # replayed
    run.script.then(deleted(2))

    run.run(workers)

    legacy = run.layout.legacy_hls_master(request.video_id).rsplit("/", 1)[0] + "/"
    prefixes = [p for p in run.layout.video_prefixes(request.video_id) if p != legacy]
    assert legacy in run.layout.video_prefixes(request.video_id)  # an old video's TS go too
    assert all(any(k.startswith(p) for k in listed["done"]) for p in prefixes)
    assert run.layout.chunk("c" * 64) in listed["done"]
    assert [k for k in listed["deleted"] if request.video_id in k] == []
    assert run.layout.chunk("c" * 64) not in listed["deleted"]
    assert run.keys("") == listed["deleted"]  # the replay removed nothing more
    first, again = run.statuses(ev.VideoDeleted)
    assert first.id == again.id == ev.event_id(delete.id, "video.deleted")
    assert first.requested_by == "alice"


def test_a_delete_of_an_unknown_video_still_ends_with_video_deleted(
    workers: int, tc_settings: Settings
) -> None:
    run = Transcode(tc_settings)
    delete = _delete("never-seen")
    run.script.send(run.jobs, delete)
    run.script.then(run.until(ev.VideoDeleted))

    run.run(workers)

    [deleted] = run.statuses(ev.VideoDeleted)
    assert (deleted.video_id, deleted.run) == ("never-seen", delete.id)
    assert not run.statuses(ev.JobCancelled) and not run.out.events(run.dlq)


def test_a_deleted_upload_loses_its_uploaded_bytes_and_no_other_upload_does(
    workers: int, tc_settings: Settings
) -> None:
    run = Transcode(tc_settings)
    mine, other = uuid.uuid4().hex, uuid.uuid4().hex
    for upload_id in (mine, other):
        _put(run, run.layout.incoming(upload_id), b"uploaded bytes")
    delete = _delete(upload_video_id(mine))
    run.script.send(run.jobs, delete)
    run.script.then(run.until(ev.VideoDeleted))

    run.run(workers)

    assert run.keys(run.layout.incoming_prefix()) == [run.layout.incoming(other)]
