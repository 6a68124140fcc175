"""The event contract: every type round-trips, every kind of bad message is a clear DecodeError."""

from __future__ import annotations

import msgspec
import pytest

from core import events as ev

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
