"""The event contract: every type round-trips, every kind of bad message is a clear DecodeError."""

from __future__ import annotations

import msgspec
import pytest

from core import events as ev
from core.errors import is_public

SHA = "ab" * 32
PROBE = ev.Probe(duration=2.5, width=1920, height=1080, fps=30.0, has_audio=True)
CHUNK = ev.ChunkRef(index=0, offset=0, size=10, sha256=SHA)
RENDITION = ev.Rendition(height=720, width=1280, key="renditions/v/720p.mp4", hls="hls/v/720p")
MANIFEST = ev.Manifest(
    video_id="v", size=10, chunks=[CHUNK], composite_sha256=f"{SHA}-1", sha256=SHA,
    source_key="sources/v/source",
)  # fmt: skip
STATUS = {"video_id": "v", "run": "r", "seq": 3}

SAMPLES: list[ev.Event] = [
    ev.FileChanged(id="1", stream_id="s", host="h", path="/a.mp4", size=5, mtime=1.0, inode=7),
    ev.FileClosed(id="2", stream_id="s", host="h", path="/a.mp4", size=5, mtime=1.0),
    ev.FileDeleted(id="3", stream_id="s", host="h", path="/a.mp4"),
    ev.UploadCompleted(id="4", upload_id="u", bucket="b", key="incoming/u/source", size=9),
    ev.TranscodeRequested(
        id="5",
        video_id="v",
        job_id="j",
        source=ev.SourceRef(bucket="b", key="sources/v/source", size=10, sha256=SHA),
        probe=PROBE,
    ),
    ev.TranscodeCancel(id="6", video_id="v"),
    ev.VideoDelete(id="6d", video_id="v", requested_by="alice"),
    ev.IngestStarted(id="7", origin="watch", filename="a.mp4", **STATUS),
    ev.ChunkStored(id="8", chunk=CHUNK, deduplicated=True, **STATUS),
    ev.IngestRestarted(id="9", reason="file shrank", **STATUS),
    ev.IngestCompleted(id="10", manifest=MANIFEST, **STATUS),
    ev.ProbeCompleted(id="11", probe=PROBE, **STATUS),
    ev.UnitStarted(id="12", job_id="j", unit="u1", heights=[720, 480], **STATUS),
    ev.UnitProgress(id="13", job_id="j", unit="u1", percent=42.5, fps=60, speed=2.0, **STATUS),
    ev.RenditionCompleted(id="14", job_id="j", rendition=RENDITION, **STATUS),
    ev.RenditionFailed(id="15", job_id="j", height=720, error="boom", attempt=2, **STATUS),
    ev.JobCompleted(
        id="16", job_id="j", renditions=[RENDITION], master="hls/v/master.m3u8", **STATUS
    ),
    ev.JobFailed(id="17", reason="not a video", stage="probe", **STATUS),
    ev.JobCancelled(id="18", job_id="j", **STATUS),
    ev.VideoDeleted(id="18d", requested_by="alice", **STATUS),
    ev.dead_letter(raw=b"\xff\x00", key=b"k", topic="t", partition=1, offset=9, error="bad"),
]


def test_every_event_type_has_a_sample() -> None:
    assert {type(s) for s in SAMPLES} == set(ev.TYPES.values())


@pytest.mark.parametrize("event", SAMPLES, ids=lambda e: e.type)
def test_round_trip(event: ev.Event) -> None:
    decoded = ev.decode(ev.encode(event))
    assert decoded == event
    assert decoded.partition_key == event.partition_key
    assert msgspec.json.decode(ev.encode(event))["type"] == event.type


@pytest.mark.parametrize("event", SAMPLES, ids=lambda e: e.type)
def test_decode_checks_topic_family(event: ev.Event) -> None:
    assert ev.decode(ev.encode(event), expect=event.topic) == event
    other = "status" if event.topic != "status" else "jobs"
    with pytest.raises(ev.DecodeError, match="does not belong"):
        ev.decode(ev.encode(event), expect=other)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"\x00\xffnot json", "not a JSON object"),
        (b"[1, 2]", "not a JSON object"),
        (b"{}", "missing field 'type'"),
        (b'{"type": "video.exploded", "id": "x"}', "unknown event type"),
        (b'{"type": "file.deleted", "v": 99, "id": "x"}', "unsupported schema version v=99"),
        (b'{"type": "file.deleted", "v": 1, "id": "x", "host": "h", "path": "/p"}', "stream_id"),
        (
            b'{"type": "upload.completed", "id": "x", "upload_id": "u", "bucket": "b",'
            b' "key": "k", "size": "big"}',
            r"Expected `int`, got `str` - at `\$.size`",
        ),
        (
            b'{"type": "unit.progress", "id": "x", "video_id": "v", "run": "r", "seq": 1,'
            b' "job_id": "j", "unit": "u", "percent": 140}',
            "percent",
        ),
        (b"", "not a JSON object"),
        (None, "empty message"),
    ],
)
def test_bad_messages_are_clear_errors(raw: bytes | None, message: str) -> None:
    with pytest.raises(ev.DecodeError, match=message):
        ev.decode(raw)
    error = ev.try_decode(raw)
    assert isinstance(error, ev.DecodeError)


def test_try_decode_never_raises_on_arbitrary_bytes() -> None:
    for raw in (bytes(range(256)), b'{"type": 5}', b'{"type": "file.changed", "v": "one"}'):
        assert isinstance(ev.try_decode(raw), ev.DecodeError)


def test_dead_letter_keeps_raw_bytes_and_is_deterministic() -> None:
    first = ev.dead_letter(raw=b"\x00\x01", key=None, topic="t", partition=0, offset=1, error="e")
    again = ev.dead_letter(raw=b"\x00\x01", key=None, topic="t", partition=0, offset=1, error="e")
    assert first.id == again.id
    decoded = ev.decode(ev.encode(first))
    assert isinstance(decoded, ev.DeadLetter)
    assert decoded.raw == b"\x00\x01"
    assert decoded.original_key == ""


def test_event_id_is_deterministic_and_distinct() -> None:
    assert ev.event_id("chunk", "v", 1) == ev.event_id("chunk", "v", 1)
    assert ev.event_id("chunk", "v", 1) != ev.event_id("chunk", "v", 2)


# ---------------------------------------------------------------- bounds (issue 9, observation 6)


def _status(**fields: object) -> bytes:
    body: dict[str, object] = {"type": "job.failed", "v": 1, "id": "e", "video_id": "v",
                               "run": "r", "seq": 1, "reason": "no"}  # fmt: skip
    body.update(fields)
    return msgspec.json.encode({k: v for k, v in body.items() if v is not None})


def _rendition(**fields: object) -> bytes:
    rendition = {"height": 720, "width": 1280, "key": "renditions/v/720p.mp4", "hls": "h"}
    rendition.update(fields)
    return _status(type="rendition.completed", job_id="j", rendition=rendition)


@pytest.mark.parametrize(
    ("raw", "where"),
    [
        (_status(reason="bad\x00reason"), "reason"),
        (_status(video_id="v" * 65), "video_id"),
        (_status(id="e" * 65), "id"),
        (_status(run="r" * 129), "run"),
        (_status(video_id="../other"), "video_id"),
        (_status(video_id="a b"), "video_id"),
        (_status(seq=2**31), "seq"),
        (_status(seq=-1), "seq"),
        (_status(ts=-1.0), "ts"),
        (_status(ts=1e400), "ts"),
        (_status(job_id="j" * 65), "job_id"),
        (_rendition(height=2**31), "height"),
        (_rendition(width=2**31), "width"),
        (_rendition(bandwidth=2**50 + 1), "bandwidth"),
        (_rendition(key="renditions/v/720p.mp4\nX-Amz: 1"), "key"),
        (_rendition(key="k" * 1025), "key"),
        (_status(type="ingest.started", origin="upload", filename="a\x00.mp4"), "filename"),
        (_status(type="ingest.started", origin="upload", filename="a" * 256), "filename"),
        (_status(type="ingest.started", origin="upload", owner="o" * 65), "owner"),
        (_status(type="ingest.started", origin="upload", owner="al ice"), "owner"),
        (_status(type="unit.progress", job_id="j", unit="u", percent=100.5), "percent"),
        (_status(type="unit.progress", job_id="j", unit="u", percent=5, fps=1e400), "fps"),
        (_status(type="unit.started", job_id="j", unit="u", heights=[1] * 65), "heights"),
        (
            _status(
                type="job.completed", job_id="j", renditions=[], master="m", warnings=["w"] * 65
            ),
            "warnings",
        ),
        (
            _status(
                type="job.completed", job_id="j", renditions=[], master="m", warnings=["nul\x00"]
            ),
            "warnings",
        ),
        (
            _status(
                type="chunk.stored", chunk={"index": 2**31, "offset": 0, "size": 1, "sha256": SHA}
            ),
            "index",
        ),
        (
            _status(
                type="chunk.stored",
                chunk={"index": 0, "offset": 0, "size": 1, "sha256": SHA + "\n"},
            ),
            "sha256",
        ),
        (
            _status(
                type="chunk.stored",
                chunk={"index": 0, "offset": 2**50 + 1, "size": 1, "sha256": SHA},
            ),
            "offset",
        ),
        (
            msgspec.json.encode(
                {
                    "type": "upload.completed",
                    "id": "x",
                    "upload_id": "u",
                    "bucket": "b",
                    "key": "k",
                    "size": 1,
                    "owner": "o" * 65,
                }
            ),
            "owner",
        ),
        (
            msgspec.json.encode(
                {
                    "type": "file.changed",
                    "id": "x",
                    "stream_id": "s",
                    "host": "h",
                    "path": "/a\x00b",
                    "size": 1,
                    "mtime": 0,
                }
            ),
            "path",
        ),
    ],
)
def test_a_field_past_its_bounds_does_not_decode(raw: bytes, where: str) -> None:
    with pytest.raises(ev.DecodeError) as caught:
        ev.decode(raw)
    assert where in str(caught.value)


def test_values_at_their_bounds_decode() -> None:
    started = ev.decode(
        _status(
            type="ingest.started",
            origin="upload",
            video_id="v" * 64,
            id="e" * 64,
            run="r" * 128,
            seq=2**31 - 1,
            filename="é" * 255,
            owner="o" * 64,
            reason=None,
        )
    )
    assert isinstance(started, ev.IngestStarted)
    assert (len(started.video_id), started.seq, len(started.owner)) == (64, 2**31 - 1, 64)
    failed = ev.decode(_status(reason="line one\n\tline two"))  # a reason may be multi-line
    assert isinstance(failed, ev.JobFailed) and "\n" in failed.reason


def test_encode_refuses_an_event_its_consumers_would_refuse() -> None:
    too_long = ev.UploadCompleted(id="u1", upload_id="u", bucket="b", key="incoming/u/source",
                                  size=1, owner="o" * 65)  # fmt: skip
    with pytest.raises(
        ev.DecodeError, match=r"refusing to encode an invalid 'upload.completed'.*owner"
    ):
        ev.encode(too_long)
    with pytest.raises(ev.DecodeError, match="seq"):
        ev.encode(ev.JobCancelled(id="c", video_id="v", run="r", seq=2**31, job_id="j"))


def test_a_dead_letter_is_storable_and_public_whatever_it_was_given() -> None:
    letter = ev.dead_letter(
        raw=b"\x00", key=b"k\x00\xff" + b"x" * 2000, topic="t", partition=0, offset=1,
        error='Traceback (most recent call last):\n  File "/srv/app.py", line 3\n'
              "ValueError: see http://minio:9000/b/k?X-Amz-Signature=abc",
    )  # fmt: skip
    assert "\x00" not in letter.original_key and len(letter.original_key) <= ev.KEY_MAX
    assert is_public(letter.error) and "ValueError" in letter.error
    assert ev.decode(ev.encode(letter)) == letter


def test_a_dead_letter_of_anything_can_be_written() -> None:
    for ts in (-1.0, 1e300, float("nan")):  # a Kafka timestamp may be absent (-1) or absurd
        letter = ev.dead_letter(raw=b"x" * (ev.RAW_MAX + 1), key=None, topic="t", partition=-1,
                                offset=-1, error="bad", ts=ts)  # fmt: skip
        assert ev.decode(ev.encode(letter)) == letter
        assert len(letter.raw) == ev.RAW_MAX and "bytes kept" in letter.error


def test_status_events_carry_bounded_phase_timings() -> None:
    """The transcode flow reports where a unit's and a job's time went (issue 12's bench reads
    it); events written before the field decode with none, and it is bounded like every field."""
    timed = ev.RenditionCompleted(id="p", job_id="j", rendition=RENDITION, **STATUS,
                                  phases={"queued": 0.25, "encode": 3.5})  # fmt: skip
    assert ev.decode(ev.encode(timed)) == timed
    decoded = ev.decode(_rendition())
    assert isinstance(decoded, ev.RenditionCompleted) and decoded.phases == {}
    done = ev.JobCompleted(id="d", job_id="j", renditions=[RENDITION], master="m", **STATUS,
                           phases={"previews": 1.5})  # fmt: skip
    assert ev.decode(ev.encode(done)) == done
    for bad in ({"encode": -1.0}, {"x" * 33: 1.0}, {"a b": 1.0},
                {f"p{i}": 1.0 for i in range(17)}):  # fmt: skip
        raw = msgspec.json.encode({**msgspec.to_builtins(timed), "phases": bad})
        with pytest.raises(ev.DecodeError, match="phases"):
            ev.decode(raw)
