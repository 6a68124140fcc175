"""Issue 13: a manifest names the object holding a video's bytes (the upload, or an identical
file's source), and every reader takes that key through ``ObjectLayout.source_of``: only keys
the layout derives to hold a source are believed, so a forged manifest, status event or request
never points a video at another object (a chunk, a rendition, a path that climbs out)."""

from __future__ import annotations

import pytest

from core import events as ev
from core.jobs import reprocess_request
from core.layout import ForeignSource, ObjectLayout
from core.settings import Settings
from dataflows.transcode.validate import RequestRules, request_problem

SETTINGS = Settings()
LAYOUT = ObjectLayout(SETTINGS.storage)
SHA = "ab" * 32
PROBE = ev.Probe(duration=2.0, width=480, height=270, fps=25.0)


def manifest(video_id: str = "v1", source_key: str = "") -> ev.Manifest:
    chunk = ev.ChunkRef(index=0, offset=0, size=10, sha256=SHA)
    return ev.Manifest(
        video_id=video_id, size=10, chunks=[chunk], composite_sha256=f"{SHA}-1", sha256=SHA,
        source_key=source_key,
    )  # fmt: skip


@pytest.mark.parametrize(
    "key",
    [
        LAYOUT.source("v1"),  # its own (a watched file, the earlier layout)
        LAYOUT.source("v1", ".mp4"),
        LAYOUT.incoming("upload-1"),  # the upload it came from
        LAYOUT.source("other-video"),  # an identical file's source (dedup)
        LAYOUT.incoming("someone-elses-upload"),
    ],
)
def test_a_manifest_naming_a_source_key_the_layout_derives_is_read(key: str) -> None:
    assert LAYOUT.source_of(manifest(source_key=key), "v1") == key


def test_a_manifest_of_the_earlier_layout_without_a_key_reads_as_the_videos_source() -> None:
    assert LAYOUT.source_of(manifest(source_key=""), "v1") == LAYOUT.source("v1")


@pytest.mark.parametrize(
    "key",
    [
        LAYOUT.chunk(SHA),
        LAYOUT.manifest("v2"),
        LAYOUT.rendition("v2", 240),
        LAYOUT.poster("v2"),
        LAYOUT.by_sha256(SHA),
        "incoming/../sources/v2/source",
        "incoming/u1/source/../../x",
        "incoming/u1/other",
        "sources/v2/source/extra",
        "sources/../v2/source",
        "sources/v2/source.mp4.exe/x",
        "/etc/passwd",
        "elsewhere/v2/source",
    ],
)
def test_a_forged_source_key_is_refused(key: str) -> None:
    assert not LAYOUT.is_source_key(key)
    with pytest.raises(ForeignSource):
        LAYOUT.source_of(manifest(source_key=key), "v1")


def test_another_videos_manifest_is_refused() -> None:
    with pytest.raises(ForeignSource):
        LAYOUT.source_of(manifest("v2", LAYOUT.source("v2")), "v1")


def test_the_dedup_index_key_takes_only_a_digest_and_no_video_id_can_reach_it() -> None:
    assert LAYOUT.by_sha256(SHA).startswith(f"{SETTINGS.storage.prefix_sources}/")
    with pytest.raises(ValueError):
        LAYOUT.by_sha256("../../etc")
    # no video id's prefix holds the index (ids begin with a letter or digit)
    assert not any(LAYOUT.by_sha256(SHA).startswith(p) for p in LAYOUT.video_prefixes("by-sha256"))


def test_a_reprocess_of_a_video_sharing_bytes_names_its_own_source_and_passes_validation() -> None:
    """The portal's row holds where the bytes are (an upload); the request names the video's
    own source, which ``validate.py`` accepts; the flow resolves the bytes from the manifest."""
    rules = RequestRules(SETTINGS.storage.bucket, LAYOUT, frozenset(SETTINGS.transcode.profiles))
    for where in (LAYOUT.incoming("u1"), LAYOUT.source("other-video"), LAYOUT.source("v1")):
        request = reprocess_request(
            SETTINGS, video_id="v1", source_key=where, size=10, sha256=SHA, probe=PROBE
        )
        assert request.source.key == LAYOUT.source("v1")
        assert request_problem(request, rules) is None
    legacy = reprocess_request(
        SETTINGS, video_id="v1", source_key=LAYOUT.source("v1", ".mp4"), size=10, sha256=SHA,
        probe=PROBE,
    )  # fmt: skip
    assert legacy.source.key == LAYOUT.source("v1", ".mp4")
