"""The portal on real Kafka and PostgreSQL: exactly-once projection, rebuild, pages, API, SSE."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import msgspec
import psycopg
import pytest
from litestar.testing import TestClient
from sqlalchemy import create_engine, text

from connectors.kafka import flush_or_raise, make_producer, produce_event
from core import events as ev
from core.settings import Settings, settings_environ
from portal.app import create_app
from portal.auth.accounts import create_user, issue_token
from portal.live import RESYNC, NotifyHub
from portal.models import PROJECTION_TABLES
from portal.projection import NOTIFY_CHANNEL
from portal.projector import Projector, drop_projection
from portal.rebuild import replay_to_end
from tests.flows import ROOT, free_port, wait_http
from tests.portal_login import PASSWORD, log_in

pytestmark = pytest.mark.integration

SHA = "ab" * 32


def life_of(video_id: str, filename: str, fail: bool = False, master: str = "") -> list[ev.Event]:
    """A video's status events, ingest to ``job.completed`` (or ``job.failed``); ``master``: the
    master playlist it names (default the TS layout's, as videos made before CMAF)."""
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
                        master=master or f"hls/{video_id}/master.m3u8", **s),
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

    # A replayed dead letter: the replay is the portal's own record, outside the projection;
    # the replayed bytes come back through the topic (a second dead letter, also in the log).
    with TestClient(app=create_app(portal_settings)) as client:
        create_user(portal_settings, "ops", PASSWORD, "admin")
        auth = {"Authorization": f"Bearer {issue_token(portal_settings, 'ops', 'test')}"}
        letter_id = before["dead_letters"][0][0]
        replayed = client.post(f"/api/dead-letters/{letter_id}/replay", headers=auth)
        assert replayed.status_code == 200 and replayed.json()["replayed_at"], replayed.text
    replay_to_end(Projector(portal_settings))  # the live projector continues where it was
    before = snapshot(portal_settings)
    assert len(before["dead_letters"]) == 2

    drop_projection(portal_settings)
    assert snapshot(portal_settings)["videos"] == []
    replay_to_end(Projector(portal_settings))
    assert snapshot(portal_settings) == before
    engine = create_engine(portal_settings.postgres.url)
    try:
        with engine.connect() as conn:
            kept = conn.execute(text("SELECT letter_id, status FROM dead_letter_replays")).all()
    finally:
        engine.dispose()
    assert [tuple(r) for r in kept] == [(letter_id, "replayed")]  # a rebuild keeps it


def test_replay_to_end_beside_a_running_projector_and_when_already_at_the_end(
    portal_settings: Settings,
) -> None:
    stop = threading.Event()
    running = Projector(portal_settings)  # the projector `vidflow up` runs, same group
    worker = threading.Thread(target=running.run, kwargs={"stop": stop}, daemon=True)
    worker.start()
    try:
        for round_ in range(2):
            produce(portal_settings, life_of(uuid.uuid4().hex, f"r{round_}.mp4"))
            outcome: list[int] = []
            replay = threading.Thread(
                target=lambda out=outcome: out.append(replay_to_end(Projector(portal_settings))),
                daemon=True,
            )
            started = time.monotonic()
            replay.start()
            replay.join(60)
            assert outcome, "replay_to_end did not finish beside a running projector"
            assert time.monotonic() - started < 30
        # everything is projected: a replay from the stored offsets ends at once
        started = time.monotonic()
        assert replay_to_end(Projector(portal_settings)) == 0
        assert time.monotonic() - started < 15
    finally:
        stop.set()
        worker.join(15)


def test_rebuild_refuses_while_the_projector_runs(portal_settings: Settings) -> None:
    video_id = uuid.uuid4().hex
    produce(portal_settings, life_of(video_id, "kept.mp4"))
    replay_to_end(Projector(portal_settings))
    run = portal_settings.home / "run"
    run.mkdir(parents=True, exist_ok=True)
    (run / "app-projector.pid").write_text(str(os.getpid()))  # a live process
    env = {**settings_environ(portal_settings), "PATH": "/usr/bin:/bin", "HOME": str(Path.home())}
    refused = subprocess.run(
        [sys.executable, "-m", "vidflow", "portal", "rebuild"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert refused.returncode != 0
    assert "projector is running" in refused.stderr and "vidflow down" in refused.stderr
    assert [r[0] for r in snapshot(portal_settings)["videos"]] == [video_id]  # untouched

    (run / "app-projector.pid").unlink()
    rebuilt = subprocess.run(
        [sys.executable, "-m", "vidflow", "portal", "rebuild"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "projection rebuilt" in rebuilt.stdout
    assert [r[0] for r in snapshot(portal_settings)["videos"]] == [video_id]


def test_pages_and_api(portal_settings: Settings) -> None:
    ok, bad = uuid.uuid4().hex, uuid.uuid4().hex
    produce(portal_settings, life_of(ok, "holiday <b>.mp4") + life_of(bad, "broken.mp4", fail=True))
    replay_to_end(Projector(portal_settings))
    with TestClient(app=create_app(portal_settings)) as client:
        log_in(client, portal_settings, "ops", "admin")  # the events carry no owner
        page = client.get("/")
        assert page.status_code == 200
        assert "holiday &lt;b&gt;.mp4" in page.text  # names are escaped, never markup
        assert 'sse-connect="/events?since=' in page.text  # the render time: a resync point
        failed = client.get("/", params={"status": "failed"})
        assert "broken.mp4" in failed.text and "holiday" not in failed.text
        fragment = client.get("/", params={"q": "holi"}, headers={"HX-Request": "true"})
        assert fragment.text.lstrip().startswith("<table") and "holiday" in fragment.text
        detail = client.get(f"/videos/{ok}")
        assert detail.status_code == 200 and SHA in detail.text and "240p" in detail.text
        assert f'sse-connect="/videos/{ok}/events?since=' in detail.text
        assert 'sse-swap="timeline"' in detail.text and "source verified" in detail.text
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

        life = life_of(video_id, "live.mp4")
        page = f"{base}/videos/{video_id}/events"
        with httpx.stream("GET", page, headers=auth, timeout=30) as stream:
            produce(portal_settings, life[1:2])  # chunk 0 stored
            assert "chunk 0 stored" in _sse_data(stream.iter_lines(), "timeline")

        # A page rendered before the last change connects late: it is sent what it missed.
        since = time.time() - 5
        produce(portal_settings, life[2:3])  # source verified
        _wait_for_timeline(portal_settings, video_id, "source verified")
        with httpx.stream("GET", page, params={"since": since}, headers=auth, timeout=30) as s:
            lines = s.iter_lines()
            assert "ingesting" in _sse_data(lines, "status")  # at once, no new event needed
            assert "source verified" in _sse_data(lines, "timeline")

        # The videos page says what it shows: a recent video it did not show (its first event
        # made before the page, projected after) is new to it; one it showed is swapped.
        for shown, event in (("", "video-new"), (video_id, f"video-{video_id}")):
            params = {"since": since, "shown": shown}
            with httpx.stream("GET", f"{base}/events", params=params, headers=auth) as s:
                assert video_id in _sse_data(s.iter_lines(), event)
    finally:
        stop.set()
        worker.join(10)
        server.terminate()
        server.wait(10)


def _sse_data(lines: Iterator[str], event: str, timeout: float = 15.0) -> str:
    """The data of the next server-sent event named ``event`` (``lines`` of one stream)."""
    deadline = time.monotonic() + timeout
    for line in lines:
        assert time.monotonic() < deadline, f"no {event} event in time"
        if line == f"event: {event}":
            data = next(lines)
            assert data.startswith("data: ")
            return data
    raise AssertionError(f"the stream ended before a {event} event")


def _wait_for_timeline(settings: Settings, video_id: str, summary: str) -> None:
    engine = create_engine(settings.postgres.url)
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            with engine.connect() as conn:
                found = conn.execute(
                    text("SELECT 1 FROM timeline WHERE video_id = :v AND summary LIKE :s"),
                    {"v": video_id, "s": f"{summary}%"},
                ).first()
            if found:
                return
            time.sleep(0.2)
        raise AssertionError(f"{summary!r} never projected")
    finally:
        engine.dispose()


def test_the_listen_task_survives_a_lost_connection_and_a_failing_listener(
    portal_settings: Settings,
) -> None:
    async def scenario() -> None:
        hub = NotifyHub(portal_settings.postgres)
        failures: list[str] = []

        def broken(video_id: str) -> None:
            if video_id == "first":
                failures.append(video_id)
                raise RuntimeError("a listener with a bug")

        hub.listeners.append(broken)
        queue = hub.subscribe()
        await hub.start()
        try:
            await asyncio.wait_for(hub.listening.wait(), 10)
            assert await asyncio.wait_for(queue.get(), 5) == RESYNC
            async with await psycopg.AsyncConnection.connect(
                portal_settings.postgres.dsn, autocommit=True
            ) as admin:

                async def notify(payload: str) -> None:
                    await admin.execute("SELECT pg_notify(%s, %s)", (NOTIFY_CHANNEL, payload))

                await notify("first")  # the listener raises: logged, the hub goes on
                assert await asyncio.wait_for(queue.get(), 5) == "first"
                await notify("second")
                assert await asyncio.wait_for(queue.get(), 5) == "second"
                # the database drops the LISTEN connection: it comes back, and says "resync"
                await admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND query LIKE 'LISTEN%%'"
                    " AND pid <> pg_backend_pid()"
                )
                assert await asyncio.wait_for(queue.get(), 15) == RESYNC
                assert hub.connects == 2
                await notify("third")
                assert await asyncio.wait_for(queue.get(), 5) == "third"
        finally:
            await hub.stop()
        assert failures == ["first"]

    asyncio.run(scenario())
