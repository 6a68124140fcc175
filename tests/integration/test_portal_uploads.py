"""Uploads, readiness, OpenAPI and operations on real MinIO, Kafka and PostgreSQL.

Parts go to MinIO through the presigned URLs exactly as a browser sends them (plain HTTP PUTs);
the "reload" in the middle is a fresh GET of the upload, which must answer from what MinIO holds.
"""

from __future__ import annotations

import os
import time
import uuid

import httpx
import msgspec
import pytest
from litestar import Litestar
from litestar.testing import TestClient

from connectors.kafka import flush_or_raise, make_producer
from connectors.multipart import MIN_PART_SIZE
from connectors.storage import make_client
from portal.accounts import create_user, issue_token
from portal.app import create_app
from portal.cli import replay_to_end
from portal.projector import Projector
from tests.flows import TopicReader, free_port
from tests.integration.test_portal import life_of, produce
from tests.portal_login import csrf_headers, log_in
from vidflow import events as ev
from vidflow.settings import Settings

pytestmark = pytest.mark.integration

PART = MIN_PART_SIZE


def bearer(settings: Settings, username: str, role: str) -> dict[str, str]:
    """A user of ``role`` and the header a producer authenticates with (an API token)."""
    create_user(settings, username, "correct horse battery", role)  # type: ignore[arg-type]
    return {"authorization": f"Bearer {issue_token(settings, username, 'tests')}"}


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
    with TestClient(app=create_app(no_store)) as client:
        down = client.get("/readyz")
        assert down.status_code == 503 and down.json()["failing"] == ["minio"]


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
