"""Chunk planning and composite checksums (pure)."""

from __future__ import annotations

import base64
import hashlib
import pickle

import pytest

from core.events import ChunkRef
from core.ids import upload_video_id, video_id_for
from dataflows.ingest.chunking import composite_matches, composite_sha256, plan_chunks
from dataflows.ingest.state import StreamState

MB = 10


def test_only_whole_chunks_while_the_file_may_grow() -> None:
    assert plan_chunks(0, 25, MB, final=False) == [(0, 10), (10, 10)]
    assert plan_chunks(20, 25, MB, final=False) == []


def test_the_tail_is_cut_when_final() -> None:
    assert plan_chunks(20, 25, MB, final=True) == [(20, 5)]
    assert plan_chunks(0, 20, MB, final=True) == [(0, 10), (10, 10)]
    assert plan_chunks(0, 0, MB, final=True) == []


def test_new_bytes_only_from_the_last_offset() -> None:
    grown = plan_chunks(10, 35, MB, final=False)
    assert grown == [(10, 10), (20, 10)]
    assert all(length == MB for _, length in grown)


def test_invalid_chunk_size() -> None:
    with pytest.raises(ValueError, match="positive"):
        plan_chunks(0, 10, 0, final=True)


def test_composite_checksum_follows_the_multipart_convention() -> None:
    parts = [b"a" * 3, b"b" * 2]
    digests = [hashlib.sha256(p).hexdigest() for p in parts]
    expected = hashlib.sha256(b"".join(bytes.fromhex(d) for d in digests)).hexdigest()
    assert composite_sha256(digests) == f"{expected}-2"
    assert composite_sha256([]).endswith("-0")


def test_video_ids_are_derived_from_the_starting_message() -> None:
    first = video_id_for("host:/a.mp4", "vidflow.file-events", 0, 41)
    assert first == video_id_for("host:/a.mp4", "vidflow.file-events", 0, 41)
    assert first != video_id_for("host:/a.mp4", "vidflow.file-events", 0, 97)  # a new version


def test_an_uploads_video_id_follows_from_its_upload_id_alone() -> None:
    # an announcement sent twice (at two offsets) still names one video
    assert upload_video_id("u1") == upload_video_id("u1")
    assert upload_video_id("u1") != upload_video_id("u2")
    assert upload_video_id("u1") != video_id_for("upload:u1", "vidflow.uploads", 0, 0)


def test_stream_state_counts_backlog_and_sequence() -> None:
    state = StreamState(stream_id="s", video_id="v", origin="watch", location="/a", known_size=35)
    assert state.backlog(MB) == 3
    state.next_offset = 30
    assert state.backlog(MB) == 0
    assert [state.next_seq(), state.next_seq()] == [1, 2]
    assert state.run == "ingest:v"


def test_the_stores_base64_composite_is_compared_with_the_manifests_hex_one() -> None:
    """S3 reports ``base64(sha256(d1 || d2))-N``; the manifest keeps ``hex-N`` of the same."""
    digests = [hashlib.sha256(b"a").hexdigest(), hashlib.sha256(b"b").hexdigest()]
    raw = hashlib.sha256(b"".join(bytes.fromhex(d) for d in digests)).digest()
    stored = base64.b64encode(raw).decode() + "-2"
    assert composite_matches(stored, composite_sha256(digests))
    assert not composite_matches(stored, composite_sha256(reversed(digests)))
    assert not composite_matches(base64.b64encode(raw).decode() + "-3", composite_sha256(digests))
    assert not composite_matches("", composite_sha256(digests))  # the store vouched for nothing
    assert not composite_matches("not base64!-2", composite_sha256(digests))


def test_the_upload_and_its_parts_are_snapshot_state() -> None:
    """What a resumed stream needs to go on sending parts to the same upload, and to complete
    it, pickles: the upload id, the chunks (offset, size, sha256) and the parts' ETags."""
    state = StreamState(stream_id="h:/f", video_id="v", origin="watch", location="/f")
    state.source_upload = "upload-1"
    state.chunks.append(ChunkRef(index=0, offset=0, size=5, sha256="a" * 64))
    state.part_etags.append("etag-1")
    state.next_offset = 5
    resumed = pickle.loads(pickle.dumps(state))
    assert (resumed.source_upload, resumed.chunks, resumed.part_etags, resumed.next_offset) == (
        "upload-1", state.chunks, ["etag-1"], 5,
    )  # fmt: skip
