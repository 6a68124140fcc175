"""A rung's download has its sound: a CMAF rung is stored video only and the job's audio once,
and ``/videos/{id}/download/{height}`` joins them (FFmpeg ``-c copy``), against real MinIO,
PostgreSQL and FFmpeg; a silent video's rung and an earlier layout's MP4 come as stored."""

from __future__ import annotations

import atexit
import functools
import io
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import msgspec
import pytest
from litestar.testing import TestClient
from sqlalchemy import create_engine, insert

from connectors.ffmpeg import ffmpeg_binary, ffprobe_binary
from connectors.storage import close_client, make_client
from core.events import Probe
from core.layout import ObjectLayout
from core.settings import Settings
from dataflows.transcode.commands import encode_command
from dataflows.transcode.ladder import PlannedRendition
from portal.app import create_app
from portal.models import Rendition, Video
from tests.portal_login import log_in

pytestmark = pytest.mark.integration

SECONDS = 6.0
RUNGS = (
    PlannedRendition(label=240, width=426, height=240, video_kbps=600, audio_kbps=96, audio=True),
    PlannedRendition(label=144, width=256, height=144, video_kbps=200, audio_kbps=96, audio=True),
)


@dataclass
class Ladder:
    """A video laid out as the transcode flow lays out a CMAF job, and its stored objects."""

    video_id: str
    objects: dict[str, bytes]


# the encodes of transcode_output, kept for the process (every test only reads them)
_OUTPUTS = Path(tempfile.mkdtemp(prefix="vidflow-test-ladders-"))
atexit.register(shutil.rmtree, _OUTPUTS, True)


@functools.cache
def transcode_output(audio: bool) -> Path:
    """The transcode flow's own command run on a small clip: a video-only fragmented MP4 per
    rung and, for a source with sound, ``audio.mp4`` beside them. Made once per process for
    each kind: two FFmpeg runs that every download test repeated for the same bytes."""
    work = _OUTPUTS / ("sound" if audio else "silent")
    work.mkdir()
    source = work / "source.mp4"
    sound = ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"] if audio else []
    subprocess.run(
        [ffmpeg_binary(), "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=426x240:rate=25",
         *sound, "-t", str(SECONDS), "-c:v", "libx264", "-preset", "ultrafast",
         *(["-c:a", "aac"] if audio else []), str(source)],
        check=True,
    )  # fmt: skip
    out = work / "out"
    out.mkdir()
    probe = Probe(duration=SECONDS, width=426, height=240, fps=25.0, has_audio=audio)
    argv = encode_command(ffmpeg_binary(), str(source), probe, list(RUNGS), out, "ultrafast",
                          audio_kbps=96 if audio else 0)  # fmt: skip
    at = argv.index("-progress")
    subprocess.run(argv[:at] + argv[at + 2 :], check=True)
    return out


def lay_out(settings: Settings, owner: str, audio: bool = True) -> Ladder:
    """The flow's output stored where the layout puts it, and the video projected with its
    rungs (rows as the projector writes them for a CMAF job): a video of its own each time."""
    layout, video_id = ObjectLayout(settings.storage), uuid.uuid4().hex
    out = transcode_output(audio)
    names = {layout.rendition(video_id, r.label): f"{r.label}p.mp4" for r in RUNGS}
    if audio:
        names[layout.audio(video_id)] = "audio.mp4"
    objects = {key: (out / name).read_bytes() for key, name in names.items()}
    store = make_client(settings.storage)
    for key, data in objects.items():
        store.put_object(settings.storage.bucket, key, io.BytesIO(data), len(data),
                         content_type="video/mp4")  # fmt: skip
    close_client(store)
    probe = Probe(duration=SECONDS, width=426, height=240, fps=25.0, has_audio=audio)
    engine = create_engine(settings.postgres.url)
    try:
        with engine.begin() as conn:
            conn.execute(insert(Video).values(
                id=video_id, filename="My holiday.mov", owner=owner, status="completed",
                source_key=layout.source(video_id), probe=msgspec.to_builtins(probe),
                master=layout.hls_master(video_id), created_ts=time.time(),
            ))  # fmt: skip
            for r in RUNGS:
                conn.execute(insert(Rendition).values(
                    video_id=video_id, height=r.height, width=r.width,
                    key=layout.rendition(video_id, r.label),
                    hls=layout.hls_playlist(video_id, r.label),
                ))  # fmt: skip
    finally:
        engine.dispose()
    return Ladder(video_id, objects)


def probed(data: bytes, work: Path) -> dict[str, object]:
    """ffprobe's streams and format of ``data``, counting every packet (the whole file read)."""
    path = work / f"probed-{uuid.uuid4().hex}.mp4"
    path.write_bytes(data)
    report = subprocess.run(
        [ffprobe_binary(), "-v", "error", "-count_packets", "-show_streams", "-show_format",
         "-of", "json", str(path)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    parsed: dict[str, object] = json.loads(report.stdout)
    return parsed


def assert_no_presigned_url(body: bytes, headers: dict[str, str], endpoint: str) -> None:
    """Neither the body nor a header carries a URL of the store or a signature (the store's
    address is in the portal's CSP header on purpose: uploads go there, so only the body;
    the body does name x264's web site, in the encoder's SEI of the rung itself)."""
    for needle in (b"X-Amz-", b"x-amz-", b"Signature=", endpoint.encode()):
        assert needle not in body, needle
    for needle in ("x-amz-", "signature=", "?"):
        assert not any(needle in value.lower() for value in headers.values()), needle


def test_a_cmaf_rung_downloads_with_its_audio_track(
    portal_settings: Settings, tmp_path: Path
) -> None:
    ladder = lay_out(portal_settings, "dan")
    video_id = ladder.video_id
    with TestClient(app=create_app(portal_settings)) as browser:
        log_in(browser, portal_settings, "dan", "uploader")
        page = browser.get(f"/videos/{video_id}").text
        links = re.findall(r'<a href="([^"]+)" rel="noreferrer">MP4</a>', page)
        assert links == [f"/videos/{video_id}/download/240", f"/videos/{video_id}/download/144"]
        for height in (240, 144):
            got = browser.get(f"/videos/{video_id}/download/{height}")
            assert got.status_code == 200
            assert got.headers["content-type"] == "video/mp4"
            assert got.headers["content-disposition"] == (
                f'attachment; filename="My_holiday-{height}p.mp4"'
            )
            assert_no_presigned_url(
                got.content, dict(got.headers), portal_settings.storage.endpoint
            )
            report = probed(got.content, tmp_path)
            streams = report["streams"]
            assert isinstance(streams, list)
            video = [s for s in streams if s["codec_type"] == "video"]
            audio = [s for s in streams if s["codec_type"] == "audio"]
            assert len(video) == 1 and len(audio) == 1 and len(streams) == 2
            assert video[0]["height"] == height and audio[0]["codec_name"] == "aac"
            # the whole rung and the whole track: every frame, the whole duration
            assert int(video[0]["nb_read_packets"]) == SECONDS * 25
            duration = float(report["format"]["duration"])  # type: ignore[index]
            assert abs(duration - SECONDS) < 0.2, duration
            # a copy, not a re-encode: the rung's own stream
            assert video[0]["codec_name"] == "h264"


def test_a_silent_video_downloads_its_video_as_stored(
    portal_settings: Settings, tmp_path: Path
) -> None:
    ladder = lay_out(portal_settings, "sam", audio=False)
    layout = ObjectLayout(portal_settings.storage)
    with TestClient(app=create_app(portal_settings)) as browser:
        log_in(browser, portal_settings, "sam", "uploader")
        got = browser.get(f"/videos/{ladder.video_id}/download/240")
    assert got.status_code == 200
    assert got.content == ladder.objects[layout.rendition(ladder.video_id, 240)]
    assert got.headers["content-disposition"] == 'attachment; filename="My_holiday-240p.mp4"'
    streams = probed(got.content, tmp_path)["streams"]
    assert [s["codec_type"] for s in streams] == ["video"]  # type: ignore[attr-defined]


def test_a_missing_height_and_someone_elses_video_are_not_found(portal_settings: Settings) -> None:
    ladder = lay_out(portal_settings, "ann")
    video_id, layout = ladder.video_id, ObjectLayout(portal_settings.storage)
    with TestClient(app=create_app(portal_settings)) as browser:
        log_in(browser, portal_settings, "ann", "uploader")
        assert browser.get(f"/videos/{video_id}/download/720").status_code == 404
        assert browser.get(f"/videos/{uuid.uuid4().hex}/download/240").status_code == 404
        browser.cookies.clear()
        log_in(browser, portal_settings, "bob", "uploader")
        refused = browser.get(f"/videos/{video_id}/download/240")
        proxied = browser.get(f"/videos/{video_id}/files/{layout.rendition(video_id, 240)}")
    assert refused.status_code == proxied.status_code == 404  # the file route's answer
    assert b"ftyp" not in refused.content


def test_beyond_the_remux_limit_the_answer_is_503_with_retry_after(
    portal_settings: Settings,
) -> None:
    from portal.deps import provide_remux_slots  # here: the rest runs without it

    settings = msgspec.structs.replace(
        portal_settings, portal=msgspec.structs.replace(portal_settings.portal, download_remuxes=1)
    )
    ladder = lay_out(settings, "eve")
    app = create_app(settings)
    with TestClient(app=app) as browser:
        log_in(browser, settings, "eve", "uploader")
        held = provide_remux_slots(app.state, settings).take()  # another download running
        assert held is not None
        busy = browser.get(f"/videos/{ladder.video_id}/download/240")
        assert busy.status_code == 503 and int(busy.headers["retry-after"]) > 0
        held()
        assert browser.get(f"/videos/{ladder.video_id}/download/240").status_code == 200
        assert provide_remux_slots(app.state, settings).used == 0  # given back at the end


def test_a_broken_audio_track_is_a_public_503_not_a_broken_file(portal_settings: Settings) -> None:
    ladder = lay_out(portal_settings, "kim")
    layout = ObjectLayout(portal_settings.storage)
    store = make_client(portal_settings.storage)
    junk = os.urandom(4000)
    store.put_object(portal_settings.storage.bucket, layout.audio(ladder.video_id),
                     io.BytesIO(junk), len(junk))  # fmt: skip
    close_client(store)
    with TestClient(app=create_app(portal_settings)) as browser:
        log_in(browser, portal_settings, "kim", "uploader")
        got = browser.get(
            f"/videos/{ladder.video_id}/download/240", headers={"accept": "application/json"}
        )
    assert got.status_code == 503
    assert "could not be prepared" in got.json()["detail"]
    assert_no_presigned_url(got.content, dict(got.headers), portal_settings.storage.endpoint)
