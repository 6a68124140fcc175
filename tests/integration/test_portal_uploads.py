"""Uploads, readiness, OpenAPI and operations on real MinIO, Kafka and PostgreSQL.

Parts go to MinIO through the presigned URLs exactly as a browser sends them (plain HTTP PUTs);
the "reload" in the middle is a fresh GET of the upload, which must answer from what MinIO holds.
"""

from __future__ import annotations

import io
import os
import re
import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import msgspec
import pytest
from litestar import Litestar
from litestar.testing import TestClient
from minio.error import S3Error
from sqlalchemy import create_engine, insert, update

from connectors.kafka import flush_or_raise, make_producer
from connectors.multipart import MIN_PART_SIZE
from connectors.storage import (
    INCOMING_RULE_ID,
    close_client,
    ensure_bucket,
    ensure_incoming_lifecycle,
    make_client,
)
from core import events as ev
from core.errors import is_public
from core.settings import Settings
from portal.app import create_app
from portal.auth.accounts import create_user, issue_token
from portal.health import TIMEOUT as PROBE_TIMEOUT
from portal.models import Rendition, Upload
from portal.projector import Projector
from portal.rebuild import replay_to_end
from tests.flows import TopicReader, free_port
from tests.integration.test_portal import life_of, produce
from tests.integration.test_portal_auth import add_video
from tests.portal_login import csrf_headers, log_in

pytestmark = pytest.mark.integration

PART = MIN_PART_SIZE


def bearer(settings: Settings, username: str, role: str) -> dict[str, str]:
    """A user of ``role`` and the header a producer authenticates with (an API token)."""
    create_user(settings, username, "correct horse battery", role)  # type: ignore[arg-type]
    return {"authorization": f"Bearer {issue_token(settings, username, 'tests')}"}


def claim(settings: Settings, upload_id: str, at: datetime) -> None:
    """Mark an upload as claimed by a completion at ``at`` (status ``composing``)."""
    engine = create_engine(settings.postgres.url)
    try:
        with engine.begin() as conn:
            conn.execute(
                update(Upload)
                .where(Upload.id == upload_id)
                .values(status="composing", claimed_at=at)
            )
    finally:
        engine.dispose()


def put_parts(
    client: TestClient[Litestar], upload_id: str, parts: dict[int, bytes], auth: dict[str, str]
) -> None:
    """PUT each part to its presigned URL, as the browser does (straight to MinIO)."""
    answer = client.post(
        f"/api/uploads/{upload_id}/parts", json={"numbers": list(parts)}, headers=auth
    )
    assert answer.status_code == 200, answer.text
    with httpx.Client(timeout=30) as store:
        for item in answer.json()["urls"]:
            stored = store.put(item["url"], content=parts[item["number"]])
            assert stored.status_code == 200, stored.text


def test_resumable_upload_is_announced_with_its_size(portal_settings: Settings) -> None:
    data = os.urandom(2 * PART + 12345)
    chunks = {1: data[:PART], 2: data[PART : 2 * PART], 3: data[2 * PART :]}
    uploads = TopicReader(portal_settings, portal_settings.kafka.topic_uploads)
    with TestClient(app=create_app(portal_settings)) as client:
        log_in(client, portal_settings, "uploader")  # a browser: session cookie and CSRF token
        auth = csrf_headers(client)
        created = client.post(
            "/api/uploads",
            json={"filename": "../../etc/passwd holiday.mp4", "size": len(data)},
            headers=auth,
        )
        assert created.status_code == 201, created.text
        upload = created.json()
        assert upload["part_size"] == PART and upload["parts"] == 3
        upload_id = upload["upload_id"]

        put_parts(client, upload_id, {1: chunks[1], 2: chunks[2]}, auth)
        # The page reloads: the portal answers from what MinIO holds.
        resumed = client.get(f"/api/uploads/{upload_id}", headers=auth).json()
        assert resumed["stored"] == [1, 2] and resumed["stored_bytes"] == 2 * PART
        early = client.post(f"/api/uploads/{upload_id}/complete", headers=auth)
        assert early.status_code == 409 and early.json()["extra"] == {"parts": [3]}

        put_parts(client, upload_id, {3: chunks[3]}, auth)
        # Another completion holds the claim (committed, no lock held): this one is told so.
        claim(portal_settings, upload_id, datetime.now(UTC))
        busy = client.post(f"/api/uploads/{upload_id}/complete", headers=auth)
        assert busy.status_code == 409 and "being completed" in busy.text
        # ... that completion died long ago: its stale claim is taken over
        claim(portal_settings, upload_id, datetime.now(UTC) - timedelta(hours=1))
        done = client.post(f"/api/uploads/{upload_id}/complete", headers=auth)
        assert done.status_code == 200, done.text
        assert done.json()["status"] == "completed" and done.json()["video_id"]
        again = client.post(f"/api/uploads/{upload_id}/complete", headers=auth)
        assert again.json()["video_id"] == done.json()["video_id"]  # completing twice is harmless

        someone_else = bearer(portal_settings, "other", "uploader")
        assert client.get(f"/api/uploads/{upload_id}", headers=someone_else).status_code == 404
        viewer = bearer(portal_settings, "viewer", "viewer")
        refused = client.post("/api/uploads", json={"filename": "x", "size": 1}, headers=viewer)
        assert refused.status_code == 403

    events = uploads.wait_for(lambda es: len(es) >= 1, timeout=30)
    uploads.poll(1.0)
    uploads.close()
    assert len(events) == 1  # announced once
    event = events[0]
    assert isinstance(event, ev.UploadCompleted)
    assert event.size == len(data) and event.upload_id == upload_id and event.owner == "uploader"
    assert event.key == f"incoming/{upload_id}/source"  # made by the server, never the file name
    assert event.filename == "../../etc/passwd holiday.mp4"
    stored = make_client(portal_settings.storage).get_object(event.bucket, event.key)
    try:
        assert stored.read() == data
    finally:
        stored.close()
        stored.release_conn()


def test_sizes_over_the_declared_or_the_limit_are_refused(portal_settings: Settings) -> None:
    limit = portal_settings.portal.max_upload_bytes
    with TestClient(app=create_app(portal_settings)) as client:
        auth = bearer(portal_settings, "uploader", "uploader")
        too_big = client.post(
            "/api/uploads", json={"filename": "big.mp4", "size": limit + 1}, headers=auth
        )
        assert too_big.status_code == 413 and str(limit) in too_big.json()["detail"]

        declared = PART + 1000
        upload_id = client.post(
            "/api/uploads", json={"filename": "liar.mp4", "size": declared}, headers=auth
        ).json()["upload_id"]
        put_parts(client, upload_id, {1: os.urandom(PART), 2: os.urandom(5000)}, auth)
        refused = client.post(f"/api/uploads/{upload_id}/complete", headers=auth)
        assert refused.status_code == 413 and "refused" in refused.json()["detail"]
        state = client.get(f"/api/uploads/{upload_id}", headers=auth).json()
        assert state["status"] == "refused" and state["stored"] == []
        bucket = portal_settings.storage.bucket
        assert list(make_client(portal_settings.storage).list_objects(bucket, "incoming/")) == []


def test_readyz_and_openapi(portal_settings: Settings) -> None:
    with TestClient(app=create_app(portal_settings)) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"] == {"kafka": "ok", "minio": "ok", "postgres": "ok"}
        auth = bearer(portal_settings, "reader", "viewer")
        schema = client.get("/schema/openapi.json", headers=auth)
        assert schema.status_code == 200
        paths = schema.json()["paths"]
        for path in (
            "/api/uploads",
            "/api/uploads/{upload_id}",
            "/api/uploads/{upload_id}/parts",
            "/api/uploads/{upload_id}/complete",
            "/api/videos",
            "/api/operations",
            "/api/videos/{video_id}/jobs",
            "/readyz",
        ):
            assert path in paths, path
        assert {"post"} <= set(paths["/api/uploads"]) and "delete" in paths[
            "/api/uploads/{upload_id}"
        ]

    no_store = msgspec.structs.replace(
        portal_settings,
        storage=msgspec.structs.replace(
            portal_settings.storage, endpoint=f"127.0.0.1:{free_port()}"
        ),
    )
    asked = time.monotonic()
    with TestClient(app=create_app(no_store)) as client:
        down = client.get("/readyz")
        assert down.status_code == 503 and down.json()["failing"] == ["minio"]
        shown = down.json()["checks"]["minio"]  # anyone may read /readyz: no internals
        assert is_public(shown) and no_store.storage.endpoint not in shown, shown
    # the probe asks once: a client that retried the refused connection with backoff held a
    # thread for about 15 s after the probe had answered (the app's shutdown waited for it)
    assert time.monotonic() - asked < PROBE_TIMEOUT + 4


def test_operations_show_lag_and_replay_dead_letters(portal_settings: Settings) -> None:
    topic = portal_settings.kafka.topic_status
    producer = make_producer(portal_settings.kafka)
    producer.produce(topic, key=b"poison-key", value=b"not json at all")
    flush_or_raise(producer)
    replay_to_end(Projector(portal_settings))  # the projector is now at the end, one dead letter
    for _ in range(3):  # ... and three messages behind
        producer.produce(topic, key=b"later", value=b"{}", partition=0)
    flush_or_raise(producer)

    with TestClient(app=create_app(portal_settings)) as client:
        uploader = bearer(portal_settings, "up", "uploader")
        assert client.get("/operations", headers=uploader).status_code == 403
        log_in(client, portal_settings, "root", "admin")
        admin = csrf_headers(client)
        page = client.get("/operations", headers=admin)
        assert page.status_code == 200 and topic in page.text and "not a JSON object" in page.text
        ops = client.get("/api/operations", headers=admin).json()
        lag = {p["partition"]: p["projector_lag"] for p in ops["partitions"] if p["topic"] == topic}
        assert lag[0] == 3 and sum(lag.values()) == 3
        assert ops["prometheus_error"] is None and ops["workers"]  # the local Prometheus answers
        [letter] = ops["dead_letters"]
        assert letter["replayed_at"] is None and "JSON" in letter["error"]

        reader = TopicReader(portal_settings, topic)
        button = client.post(f"/operations/dead-letters/{letter['id']}/replay", headers=admin)
        assert button.status_code == 200 and "replayed" in button.text  # the row, swapped in
        token = bearer(portal_settings, "robot", "admin")
        replayed = client.post(f"/api/dead-letters/{letter['id']}/replay", headers=token)
        assert replayed.status_code == 200 and replayed.json()["replayed_at"]
        deadline = time.monotonic() + 30
        while reader.raw.count(b"not json at all") < 3 and time.monotonic() < deadline:
            reader.poll(0.5)
        reader.close()
        assert reader.raw.count(b"not json at all") == 3  # the original and two replays

    no_prometheus = msgspec.structs.replace(
        portal_settings,
        metrics=msgspec.structs.replace(portal_settings.metrics, prometheus_port=free_port()),
    )
    with TestClient(app=create_app(no_prometheus)) as client:
        page = client.get("/operations", headers=token)
        assert page.status_code == 200 and "Prometheus unreachable" in page.text
        assert "not a JSON object" in page.text  # the rest of the page still works


def test_a_job_is_created_through_the_api(portal_settings: Settings) -> None:
    video_id = uuid.uuid4().hex
    produce(portal_settings, life_of(video_id, "again.mp4"))
    replay_to_end(Projector(portal_settings))
    jobs = TopicReader(portal_settings, portal_settings.kafka.topic_jobs)
    with TestClient(app=create_app(portal_settings)) as client:
        admin = bearer(portal_settings, "root", "admin")
        created = client.post(f"/api/videos/{video_id}/jobs", json={}, headers=admin)
        assert created.status_code == 202, created.text
        assert created.json()["profile"] == portal_settings.transcode.default_profile
        unknown = client.post(f"/api/videos/{video_id}/jobs", json={"profile": "x"}, headers=admin)
        assert unknown.status_code == 400
        missing = client.post(f"/api/videos/{uuid.uuid4().hex}/jobs", json={}, headers=admin)
        assert missing.status_code == 404
    [request] = jobs.wait_for(lambda es: len(es) >= 1, timeout=30)
    jobs.close()
    assert isinstance(request, ev.TranscodeRequested)
    assert request.job_id == created.json()["job_id"] and request.reason == "reprocess"
    assert request.source.key == f"sources/{video_id}/source"


SMALL = '{"small": [{"height": 144, "video_kbps": 200}]}'


def test_the_reprocess_button_sends_the_chosen_profile_and_shows_the_answer(
    portal_settings: Settings,
) -> None:
    settings = msgspec.structs.replace(
        portal_settings,
        transcode=msgspec.structs.replace(portal_settings.transcode, profiles_json=SMALL),
    )
    video_id = add_video(settings, "uma", "uma.mp4")
    jobs = TopicReader(settings, settings.kafka.topic_jobs)
    with TestClient(app=create_app(settings)) as client:
        log_in(client, settings, "uma", "uploader")
        page = client.get(f"/videos/{video_id}").text
        assert "<option >small</option>" in page and "<option selected>default</option>" in page
        assert 'hx-target="#action-result"' in page and 'id="action-result"' in page
        headers = {**csrf_headers(client), "HX-Request": "true"}
        # exactly what htmx sends: the form urlencoded in the body
        answer = client.post(
            f"/videos/{video_id}/reprocess", data={"profile": "small"}, headers=headers
        )
        assert answer.status_code == 201 and "profile small" in answer.text, answer.text
        unknown = client.post(
            f"/videos/{video_id}/reprocess", data={"profile": "<huge>"}, headers=headers
        )
        assert unknown.status_code == 400
        assert "unknown profile" in unknown.text and "&lt;huge&gt;" in unknown.text  # escaped
        cancelled = client.post(f"/videos/{video_id}/cancel", headers=headers)
        assert cancelled.status_code == 201 and "Cancel requested" in cancelled.text

        theirs = add_video(settings, "vic", "vic.mp4")
        client.cookies.clear()
        log_in(client, settings, "vic", "viewer")
        watched = client.get(f"/videos/{theirs}").text
        assert "Reprocess" not in watched and "Cancel</button>" not in watched
    events = jobs.wait_for(lambda es: len(es) >= 2, timeout=30)
    jobs.close()
    [requested] = [e for e in events if isinstance(e, ev.TranscodeRequested)]
    assert requested.profile == "small" and requested.video_id == video_id
    assert requested.reason == "reprocess"
    assert any(isinstance(e, ev.TranscodeCancel) for e in events)


def test_downloads_are_presigned_and_short_lived_playback_stays_same_origin(
    portal_settings: Settings,
) -> None:
    video_id = add_video(portal_settings, "dan", "My holiday (1).mov")
    bucket = portal_settings.storage.bucket
    mp4, playlist = os.urandom(3000), b"#EXTM3U\n"
    store = make_client(portal_settings.storage)
    key = f"renditions/{video_id}/240p.mp4"
    store.put_object(bucket, key, io.BytesIO(mp4), len(mp4), content_type="video/mp4")
    store.put_object(bucket, f"hls/{video_id}/master.m3u8", io.BytesIO(playlist), len(playlist))
    close_client(store)
    engine = create_engine(portal_settings.postgres.url)
    try:
        with engine.begin() as conn:
            conn.execute(
                insert(Rendition).values(
                    video_id=video_id, height=240, width=426, key=key,
                    hls=f"hls/{video_id}/240p/index.m3u8",
                )
            )  # fmt: skip
    finally:
        engine.dispose()
    with TestClient(app=create_app(portal_settings)) as client:
        log_in(client, portal_settings, "dan", "uploader")
        page = client.get(f"/videos/{video_id}")
        links = re.findall(r'<a href="([^"]+)" rel="noreferrer">MP4</a>', page.text)
        assert len(links) == 1 and f"/{bucket}/{key}?" in links[0]
        url = links[0].replace("&amp;", "&")
        assert "X-Amz-Expires=900" in url  # 15 minutes
        policy = page.headers["content-security-policy"]
        assert "connect-src 'self' http://" + portal_settings.storage.endpoint in policy
        assert "media-src 'self' blob:" in policy  # hls.js plays from the same origin
        proxied = client.get(f"/videos/{video_id}/files/hls/{video_id}/master.m3u8")
        assert proxied.status_code == 200 and proxied.content == playlist
    with httpx.Client(timeout=30) as browser:  # the link works without any portal session
        got = browser.get(url)
        assert got.status_code == 200 and got.content == mp4
        assert got.headers["content-disposition"] == 'attachment; filename="My_holiday_1-240p.mp4"'
        tampered = browser.get(url.replace("X-Amz-Expires=900", "X-Amz-Expires=90000"))
        assert tampered.status_code == 403  # the lifetime is part of the signature


def test_a_replayed_job_request_becomes_a_new_job(portal_settings: Settings) -> None:
    video_id = uuid.uuid4().hex
    original = ev.TranscodeRequested(
        id=ev.event_id("t", video_id), video_id=video_id, job_id=f"job-{video_id}",
        source=ev.SourceRef(bucket="vidflow", key=f"sources/{video_id}/source", size=10,
                            sha256="ab" * 32),
        probe=ev.Probe(duration=2, width=426, height=240), profile="default",
    )  # fmt: skip
    letter = ev.dead_letter(
        raw=ev.encode(original), key=video_id.encode(), topic=portal_settings.kafka.topic_jobs,
        partition=0, offset=7, error="encoder crashed", stage="transcode", ts=time.time(),
    )  # fmt: skip
    producer = make_producer(portal_settings.kafka)
    producer.produce(
        portal_settings.kafka.topic_dlq, key=video_id.encode(), value=ev.encode(letter)
    )
    flush_or_raise(producer)
    replay_to_end(Projector(portal_settings))
    jobs = TopicReader(portal_settings, portal_settings.kafka.topic_jobs)
    with TestClient(app=create_app(portal_settings)) as client:
        admin = bearer(portal_settings, "root", "admin")
        [row] = client.get("/api/operations", headers=admin).json()["dead_letters"]
        replayed = client.post(f"/api/dead-letters/{row['id']}/replay", headers=admin)
        assert replayed.status_code == 200 and replayed.json()["replay_status"] == "replayed"
    [again] = jobs.wait_for(lambda es: len(es) >= 1, timeout=30)
    jobs.close()
    assert isinstance(again, ev.TranscodeRequested) and again.video_id == video_id
    assert again.job_id != original.job_id and again.id != original.id
    assert again.reason == "replay" and again.source == original.source


def test_the_bucket_gets_the_incomplete_upload_rule_where_the_store_takes_it(
    portal_settings: Settings,
) -> None:
    store = make_client(portal_settings.storage)
    bucket = f"lc-{uuid.uuid4().hex[:12]}"
    storage = msgspec.structs.replace(portal_settings.storage, bucket=bucket)
    try:
        ensure_bucket(store, storage)  # never fails for the rule: it is housekeeping
        held = ensure_incoming_lifecycle(store, storage)
        try:
            config = store.get_bucket_lifecycle(bucket)
        except S3Error:
            config = None
        rules = [r for r in (config.rules if config else []) if r.rule_id == INCOMING_RULE_ID]
        # MinIO refuses AbortIncompleteMultipartUpload (it expires stale uploads itself); an
        # S3 store that takes it holds exactly our rule. Either way the answer is the truth.
        assert held == bool(rules)
        for rule in rules:
            assert rule.rule_filter.prefix == "incoming/"
            assert rule.abort_incomplete_multipart_upload.days_after_initiation == 1
    finally:
        store.remove_bucket(bucket)
        close_client(store)
