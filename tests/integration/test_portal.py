"""The portal on real Kafka and PostgreSQL: exactly-once projection, rebuild, pages, API, SSE."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import httpx
import msgspec
import pytest
from litestar.testing import TestClient
from sqlalchemy import create_engine, text

from connectors.kafka import flush_or_raise, make_producer, produce_event
from portal.accounts import create_user, issue_token
from portal.app import create_app
from portal.cli import replay_to_end
from portal.models import PROJECTION_TABLES
from portal.projector import Projector, drop_projection
from tests.flows import ROOT, free_port, wait_http
from tests.portal_login import PASSWORD, log_in
from vidflow import events as ev
from vidflow.settings import Settings, settings_environ

pytestmark = pytest.mark.integration

SHA = "ab" * 32


def life_of(video_id: str, filename: str, fail: bool = False) -> list[ev.Event]:
    run, job = f"ingest:{video_id}", f"job-{video_id}"
    chunk = ev.ChunkRef(index=0, offset=0, size=10, sha256=SHA)
    manifest = ev.Manifest(video_id=video_id, size=10, chunks=[chunk], composite_sha256=f"{SHA}-1",
                           sha256=SHA, source_key=f"sources/{video_id}/source")  # fmt: skip
    rendition = ev.Rendition(height=240, width=426, key=f"renditions/{video_id}/240p.mp4",
                             hls=f"hls/{video_id}/240p/index.m3u8")  # fmt: skip
    s = {"video_id": video_id}
    ingest: list[ev.Event] = [
        ev.IngestStarted(id=f"{run}:1", run=run, seq=1, origin="upload", filename=filename, **s),
        ev.ChunkStored(id=f"{run}:2", run=run, seq=2, chunk=chunk, bytes_so_far=10, **s),
        ev.IngestCompleted(id=f"{run}:3", run=run, seq=3, manifest=manifest, **s),
        ev.ProbeCompleted(id=f"{run}:4", run=run, seq=4,
                          probe=ev.Probe(duration=2, width=426, height=240), **s),
    ]  # fmt: skip
    if fail:
        return [
            *ingest,
            ev.JobFailed(id=f"{job}:f", run=job, seq=1, reason="boom", job_id=job, **s),
        ]
    return [
        *ingest,
        ev.UnitProgress(id=f"{job}:1", run=job, seq=1, job_id=job, unit="ladder", percent=50, **s),
        ev.RenditionCompleted(
            id=f"{job}:r240", run=job, seq=2, job_id=job, rendition=rendition, **s
        ),
        ev.JobCompleted(id=f"{job}:done", run=job, seq=3, job_id=job, renditions=[rendition],
                        master=f"hls/{video_id}/master.m3u8", **s),
    ]  # fmt: skip


def produce(settings: Settings, items: list[ev.Event], raw: list[bytes] = ()) -> None:  # type: ignore[assignment]
    producer = make_producer(settings.kafka)
    for item in items:
        produce_event(producer, settings.kafka.topic_status, item)
    for blob in raw:
        producer.produce(settings.kafka.topic_status, key=b"x", value=blob)
    flush_or_raise(producer)


def snapshot(settings: Settings) -> dict[str, list[tuple[object, ...]]]:
    engine = create_engine(settings.postgres.url)
    try:
        with engine.connect() as conn:
            return {
                table: [
                    tuple(row) for row in conn.execute(text(f"SELECT * FROM {table} ORDER BY 1, 2"))
                ]
                for table in PROJECTION_TABLES
                if table != "consumer_offsets"
            }
    finally:
        engine.dispose()


def test_projection_is_exactly_once_and_a_rebuild_equals_the_live_one(
    portal_settings: Settings,
) -> None:
    ok, bad = uuid.uuid4().hex, uuid.uuid4().hex
    events = life_of(ok, "good.mp4") + life_of(bad, "bad.mp4", fail=True)
    duplicated = [*events[:3], events[1], *events[3:], events[-1]]  # at-least-once delivery
    replayed_with_new_seq = msgspec.structs.replace(events[5], seq=9)  # same id, later seq
    produce(portal_settings, [*duplicated, replayed_with_new_seq], raw=[b"not json"])

    live = Projector(portal_settings)
    replay_to_end(live)
    assert live.applied == len(events) + 1  # every event once, plus the dead letter
    before = snapshot(portal_settings)
    videos = {row[0]: row for row in before["videos"]}
    assert set(videos) == {ok, bad}
    assert len(before["timeline"]) == len(events)
    assert len(before["dead_letters"]) == 1 and before["dead_letters"][0][5] == b"not json"

    drop_projection(portal_settings)
    assert snapshot(portal_settings)["videos"] == []
    replay_to_end(Projector(portal_settings))
    assert snapshot(portal_settings) == before


def test_pages_and_api(portal_settings: Settings) -> None:
    ok, bad = uuid.uuid4().hex, uuid.uuid4().hex
    produce(portal_settings, life_of(ok, "holiday <b>.mp4") + life_of(bad, "broken.mp4", fail=True))
    replay_to_end(Projector(portal_settings))
    with TestClient(app=create_app(portal_settings)) as client:
        log_in(client, portal_settings, "ops", "admin")  # the events carry no owner
        page = client.get("/")
        assert page.status_code == 200
        assert "holiday &lt;b&gt;.mp4" in page.text  # names are escaped, never markup
        assert 'sse-connect="/events"' in page.text
        failed = client.get("/", params={"status": "failed"})
        assert "broken.mp4" in failed.text and "holiday" not in failed.text
        fragment = client.get("/", params={"q": "holi"}, headers={"HX-Request": "true"})
        assert fragment.text.lstrip().startswith("<table") and "holiday" in fragment.text
        detail = client.get(f"/videos/{ok}")
        assert detail.status_code == 200 and SHA in detail.text and "240p" in detail.text
        assert client.get(f"/videos/{uuid.uuid4().hex}").status_code == 404
        api = client.get(f"/api/videos/{ok}").json()
        assert api["status"] == "completed" and api["renditions"][0]["height"] == 240
        listing = client.get("/api/videos", params={"status": "failed"}).json()
        assert [v["video_id"] for v in listing["videos"]] == [bad]
        assert listing["videos"][0]["error"] == "boom"
        assert client.get("/healthz").json() == {"status": "ok"}
        assert client.get(f"/videos/{ok}/files/../../etc/passwd").status_code == 404


def test_a_status_event_reaches_the_browser_stream_without_polling(
    portal_settings: Settings,
) -> None:
    port = free_port()
    env = {**settings_environ(portal_settings), "PATH": "/usr/bin:/bin", "HOME": str(Path.home())}
    server = subprocess.Popen(
        [sys.executable, "-m", "vidflow", "portal", "serve", "--port", str(port)],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    stop = threading.Event()
    projector = Projector(portal_settings)
    worker = threading.Thread(target=projector.run, kwargs={"stop": stop}, daemon=True)
    worker.start()
    create_user(portal_settings, "ops", PASSWORD, "admin")
    auth = {"Authorization": f"Bearer {issue_token(portal_settings, 'ops', 'test')}"}
    try:
        base = f"http://127.0.0.1:{port}"
        wait_http(f"{base}/healthz")
        video_id = uuid.uuid4().hex
        with httpx.stream("GET", f"{base}/events", headers=auth, timeout=30) as stream:
            sent = time.monotonic()
            produce(portal_settings, life_of(video_id, "live.mp4")[:1])
            for line in stream.iter_lines():
                if video_id in line:  # the row arrives as `video-new` (its data names the id)
                    break
            assert time.monotonic() - sent < 10
    finally:
        stop.set()
        worker.join(10)
        server.terminate()
        server.wait(10)
