"""Webhooks against real Kafka and PostgreSQL, with receivers this test starts on 127.0.0.1.

The sender runs in a thread of the test (its own consumer group on the test's status topic);
status events are produced to Kafka as the flows would. Receivers are plain HTTP servers that
answer as told: accept, fail, or never answer. Signatures are checked here with the Standard
Webhooks scheme written out by hand (HMAC-SHA256 of ``id.timestamp.body`` under the base64 key
after ``whsec_``), not with vidflow's own signing code.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import msgspec
import pytest
from sqlalchemy import create_engine, select

from connectors import webhook_store as store
from connectors.kafka import deliver, make_producer
from connectors.webhook_targets import TargetRefused, check_target
from core import events as ev
from core.errors import is_public
from core.settings import Settings, settings_environ
from portal.auth.accounts import create_user, issue_token
from portal.models import User
from tests.flows import ROOT
from tests.integration.test_api_tokens import HTMX, bearer
from tests.integration.test_portal_auth import client_for
from tests.portal_login import PASSWORD, csrf_headers, form_token, log_in
from webhooks.sender import Sender

pytestmark = pytest.mark.integration


# ------------------------------------------------------------------ receivers


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    at: float


@dataclass
class Receiver:
    """An HTTP server on loopback; ``answers`` are the status codes of successive POSTs (the
    last repeats), ``None`` for never answering."""

    answers: list[int | str | None]
    got: list[Received] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    url: str = ""

    def answer_for(self, index: int) -> int | str | None:
        return self.answers[min(index, len(self.answers) - 1)]


@contextmanager
def receiver(*answers: int | str | None) -> Iterator[Receiver]:
    state = Receiver(list(answers))

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            index = len(state.got)
            state.got.append(
                Received({k.lower(): v for k, v in self.headers.items()}, body, time.time())
            )
            code = state.answer_for(index)
            if code is None:
                state.release.wait(30)  # never answers (until the test is over)
                return
            if code == "drip":  # 200 at once, then a body one byte every 0.5 s
                self.send_response(200)
                self.send_header("content-length", "40")
                self.end_headers()
                for _ in range(40):
                    if state.release.wait(0.5):
                        return
                    self.wfile.write(b"x")
                    self.wfile.flush()
                return
            assert isinstance(code, int)
            self.send_response(code)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state.release.set()
        server.shutdown()
        server.server_close()


# ------------------------------------------------------------------ helpers


def verify(secret: str, received: Received) -> dict[str, Any]:
    """The Standard Webhooks check, written out: the body if a ``v1`` signature matches."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    msg_id = received.headers["webhook-id"]
    timestamp = received.headers["webhook-timestamp"]
    signed = f"{msg_id}.{timestamp}.".encode() + received.body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    given = [s.split(",", 1)[1] for s in received.headers["webhook-signature"].split() if
             s.startswith("v1,")]  # fmt: skip
    assert any(hmac.compare_digest(expected, g) for g in given), "signature does not verify"
    assert abs(time.time() - int(timestamp)) < 300
    body: dict[str, Any] = json.loads(received.body)
    return body


def wait_for(what: str, condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.fixture
def hooks(portal_settings: Settings) -> Settings:
    """The portal's database and topics, loopback targets allowed, and short pauses."""
    return msgspec.structs.replace(
        portal_settings,
        webhooks=msgspec.structs.replace(
            portal_settings.webhooks, allow_private=True, timeout=1.0, backoff_first=0.3,
            backoff_factor=2.0, poll_interval=0.1,
        ),
    )  # fmt: skip


@contextmanager
def running_sender(settings: Settings) -> Iterator[Sender]:
    sender = Sender(settings)
    stop = threading.Event()
    thread = threading.Thread(target=sender.run, args=(stop,), daemon=True)
    thread.start()
    try:
        yield sender
    finally:
        stop.set()
        thread.join(30)
        assert not thread.is_alive(), "the sender did not stop"


def subscribe(settings: Settings, username: str, url: str, *types: str) -> store.Subscription:
    engine = create_engine(settings.postgres.url)
    try:
        with engine.begin() as conn:
            uid = conn.execute(select(User.id).where(User.username == username)).scalar_one()
            return store.create_subscription(
                conn, user_id=uid, owner=username, url=url,
                event_types=list(types) or ["job.completed"],
            )  # fmt: skip
    finally:
        engine.dispose()


def user(settings: Settings, name: str) -> str:
    create_user(settings, name, PASSWORD, "uploader")
    return name


def announce(settings: Settings, owner: str, *, complete: bool = True) -> str:
    """A video of ``owner`` that starts ingesting and (unless not ``complete``) completes."""
    video = uuid.uuid4().hex
    producer = make_producer(settings.kafka)
    topic = settings.kafka.topic_status
    deliver(producer, topic, ev.IngestStarted(
        id=ev.event_id("started", video), video_id=video, run=f"ingest-{video}", seq=0,
        origin="upload", filename="clip.mp4", owner=owner,
    ))  # fmt: skip
    if complete:
        deliver(producer, topic, completed(video))
    return video


def completed(video: str) -> ev.JobCompleted:
    return ev.JobCompleted(
        id=ev.event_id("completed", video), video_id=video, run=f"job-{video}", seq=9,
        job_id=f"job-{video}", renditions=[], master=f"hls/{video}/master.m3u8",
    )  # fmt: skip


def log_of(settings: Settings, sub: store.Subscription) -> list[store.Delivery]:
    engine = create_engine(settings.postgres.url)
    try:
        with engine.connect() as conn:
            return store.deliveries(conn, sub.id)
    finally:
        engine.dispose()


def attempts(settings: Settings, delivery: store.Delivery) -> list[store.Attempt]:
    engine = create_engine(settings.postgres.url)
    try:
        with engine.connect() as conn:
            return store.attempts_of(conn, [delivery.id])[delivery.id]
    finally:
        engine.dispose()


# ------------------------------------------------------------------ tests


def test_a_completed_job_reaches_the_subscriber_signed_by_the_documented_scheme(
    hooks: Settings,
) -> None:
    alice = user(hooks, "alice")
    with receiver(204) as hook, running_sender(hooks):
        sub = subscribe(hooks, alice, hook.url, "job.completed")
        video = announce(hooks, alice)
        wait_for("the POST", lambda: len(hook.got) >= 1)
        body = verify(sub.secret, hook.got[0])
        assert body["type"] == "job.completed"
        assert body["data"]["video_id"] == video
        assert body["data"]["master"] == f"hls/{video}/master.m3u8"
        assert hook.got[0].headers["content-type"] == "application/json"
        assert hook.got[0].headers["webhook-id"].startswith("msg_")
        assert "." not in hook.got[0].headers["webhook-id"]
        wait_for("the log", lambda: [d.state for d in log_of(hooks, sub)] == ["delivered"])
        time.sleep(0.5)
    # ingest.started was not subscribed to: one POST only
    assert len(hook.got) == 1
    (delivery,) = log_of(hooks, sub)
    assert delivery.event_type == "job.completed" and delivery.last_status == 204
    # a tampered body does not verify
    tampered = Received(hook.got[0].headers, hook.got[0].body.replace(b"job", b"jab"), 0)
    with pytest.raises(AssertionError, match="does not verify"):
        verify(sub.secret, tampered)


def test_a_receiver_failing_twice_gets_it_on_the_third_attempt(hooks: Settings) -> None:
    alice = user(hooks, "alice")
    with receiver(500, 503, 200) as hook, running_sender(hooks):
        sub = subscribe(hooks, alice, hook.url)
        announce(hooks, alice)
        wait_for("the log", lambda: [d.state for d in log_of(hooks, sub)] == ["delivered"])
    (delivery,) = log_of(hooks, sub)
    tries = attempts(hooks, delivery)
    assert [(a.ok, a.status_code) for a in tries] == [(False, 500), (False, 503), (True, 200)]
    assert [a.error for a in tries] == [
        "the receiver answered 500",
        "the receiver answered 503",
        "",
    ]
    assert delivery.attempts == 3 and len(hook.got) == 3
    # the same id each time, each attempt signed afresh; pauses grow (0.3 s, then 0.6 s)
    assert len({r.headers["webhook-id"] for r in hook.got}) == 1
    for received in hook.got:
        verify(sub.secret, received)
    first, second = (hook.got[1].at - hook.got[0].at), (hook.got[2].at - hook.got[1].at)
    assert 0.25 <= first < second


def test_a_receiver_that_never_answers_is_retried_and_holds_up_no_other(hooks: Settings) -> None:
    alice = user(hooks, "alice")
    with receiver(None) as silent, receiver(200) as quick, running_sender(hooks):
        stuck = subscribe(hooks, alice, silent.url)
        fine = subscribe(hooks, alice, quick.url)
        announce(hooks, alice)
        wait_for("the quick receiver", lambda: len(quick.got) == 1, timeout=15)
        wait_for("the silent receiver's first POST", lambda: len(silent.got) >= 1)
        # the silent one times out (1 s) and is tried again
        wait_for("a retry", lambda: len(silent.got) >= 3, timeout=20)
        log = log_of(hooks, stuck)
    assert [d.state for d in log_of(hooks, fine)] == ["delivered"]
    assert quick.got[0].at < silent.got[0].at + 1.0  # not after the silent one's timeout
    assert log[0].state == "pending"
    failures = attempts(hooks, log[0])
    assert len(failures) >= 2
    assert {a.error for a in failures} == {"no answer within 1 s"}
    assert all(not a.ok and a.status_code is None for a in failures)


def test_a_receiver_that_drips_its_answer_holds_the_sender_no_longer_than_its_status(
    hooks: Settings,
) -> None:
    alice = user(hooks, "alice")
    with receiver("drip") as hook, running_sender(hooks):
        sub = subscribe(hooks, alice, hook.url)
        announce(hooks, alice)
        wait_for("the POST", lambda: len(hook.got) == 1)
        # the body would take 20 s: the status (200) is all the sender waits for
        wait_for("the log", lambda: [d.state for d in log_of(hooks, sub)] == ["delivered"],
                 timeout=5)  # fmt: skip
    (delivery,) = log_of(hooks, sub)
    assert delivery.last_status == 200 and delivery.attempts == 1


def test_private_targets_are_refused_without_the_setting(hooks: Settings) -> None:
    for url in ("http://127.0.0.1:8000/x", "http://localhost/x", "http://10.1.2.3/",
                "http://169.254.169.254/latest/meta-data", "http://[::1]/", "http://192.168.0.9/",
                "http://[::ffff:127.0.0.1]/", "http://0.0.0.0/", "http://224.0.0.1/"):  # fmt: skip
        with pytest.raises(TargetRefused, match="loopback, private"):
            check_target(url, allow_private=False)
        assert check_target(url, allow_private=True) == url
    for bad in ("ftp://example.com/", "http://user:pw@example.com/", "file:///etc/passwd", ""):
        with pytest.raises(TargetRefused):
            check_target(bad, allow_private=True)
    # a subscription that slipped in before (or a name that now resolves inside): never POSTed
    strict = msgspec.structs.replace(
        hooks, webhooks=msgspec.structs.replace(hooks.webhooks, allow_private=False)
    )
    alice = user(hooks, "alice")
    with receiver(200) as hook, running_sender(strict):
        sub = subscribe(hooks, alice, hook.url)
        announce(hooks, alice)
        wait_for("the refusal", lambda: bool(log_of(hooks, sub)) and
                 log_of(hooks, sub)[0].attempts >= 1)  # fmt: skip
    (delivery,) = log_of(hooks, sub)
    assert hook.got == []
    assert delivery.last_error.startswith("target refused: the host is on a loopback")
    assert is_public(delivery.last_error) and hook.url not in delivery.last_error


def test_another_users_events_are_not_sent_to_my_subscription(hooks: Settings) -> None:
    alice, bob = user(hooks, "alice"), user(hooks, "bob")
    with receiver(200) as mine, receiver(200) as theirs, running_sender(hooks):
        # by name: the POST goes to the address checked, the name stays in the Host header
        by_name = mine.url.replace("127.0.0.1", "localhost")
        sub = subscribe(hooks, alice, by_name, "job.completed", "ingest.started")
        subscribe(hooks, bob, theirs.url, "job.completed")
        bobs = announce(hooks, bob)
        alices = announce(hooks, alice)
        wait_for("alice's two events", lambda: len(mine.got) == 2)
        wait_for("bob's event", lambda: len(theirs.got) == 1)
        time.sleep(0.5)
    assert {r.headers["host"] for r in mine.got} == {by_name.split("/")[2]}
    mine_videos = {verify(sub.secret, r)["data"]["video_id"] for r in mine.got}
    assert mine_videos == {alices}
    assert {json.loads(r.body)["data"]["video_id"] for r in theirs.got} == {bobs}
    assert sorted(d.event_type for d in log_of(hooks, sub)) == ["ingest.started", "job.completed"]


def test_send_again_reposts_the_same_event_and_a_replayed_event_is_queued_once(
    hooks: Settings,
) -> None:
    alice = user(hooks, "alice")
    with receiver(200) as hook, running_sender(hooks):
        sub = subscribe(hooks, alice, hook.url)
        video = announce(hooks, alice)
        wait_for("the POST", lambda: len(hook.got) == 1)
        # the same status event again (flows are at least once): not a second delivery
        deliver(make_producer(hooks.kafka), hooks.kafka.topic_status, completed(video))
        time.sleep(1.0)
        assert len(hook.got) == 1
        (delivery,) = log_of(hooks, sub)
        engine = create_engine(hooks.postgres.url)
        try:
            with engine.begin() as conn:
                assert store.send_again(
                    conn, delivery.id, sub.id, datetime.now(UTC), timedelta(hours=24)
                )
        finally:
            engine.dispose()
        wait_for("the second POST", lambda: len(hook.got) == 2)
    first, again = hook.got
    assert first.body == again.body
    assert first.headers["webhook-id"] == again.headers["webhook-id"]
    verify(sub.secret, again)
    assert [d.attempts for d in log_of(hooks, sub)] == [2]


# ------------------------------------------------------------------ the portal


def test_the_api_subscribes_lists_and_deletes_for_its_caller_only(hooks: Settings) -> None:
    user(hooks, "alice")
    user(hooks, "bob")
    alice = bearer(issue_token(hooks, "alice", "ci", "upload"))
    bob = bearer(issue_token(hooks, "bob", "ci", "upload"))
    reader = bearer(issue_token(hooks, "alice", "dash", "read"))
    with receiver(200) as hook, client_for(hooks) as client:
        made = client.post("/api/webhooks", json={"url": hook.url}, headers=alice)
        assert made.status_code == 201, made.text
        created = made.json()
        assert created["secret"].startswith("whsec_")
        assert len(base64.b64decode(created["secret"].removeprefix("whsec_"))) == 32
        assert created["event_types"] == ["job.completed", "job.failed"]
        listed = client.get("/api/webhooks", headers=alice).json()
        assert [s["id"] for s in listed] == [created["id"]]
        assert "secret" not in listed[0]
        assert client.get("/api/webhooks", headers=bob).json() == []
        sub_id = created["id"]
        assert client.delete(f"/api/webhooks/{sub_id}", headers=bob).status_code == 404
        assert client.get(f"/api/webhooks/{sub_id}/deliveries", headers=bob).status_code == 404
        assert client.post("/api/webhooks", json={"url": hook.url}, headers=reader).status_code \
            == 403  # fmt: skip
        wrong = client.post(
            "/api/webhooks", json={"url": hook.url, "event_types": ["nope"]}, headers=alice
        )
        assert wrong.status_code == 400 and "event types" in wrong.text
        assert client.get(f"/api/webhooks/{sub_id}/deliveries", headers=alice).json() == []
        assert client.delete(f"/api/webhooks/{sub_id}", headers=alice).status_code == 204
        assert client.get("/api/webhooks", headers=alice).json() == []


def test_the_api_refuses_a_private_target_without_the_setting(portal_settings: Settings) -> None:
    user(portal_settings, "alice")
    alice = bearer(issue_token(portal_settings, "alice", "ci", "upload"))
    with client_for(portal_settings) as client:
        for url in ("http://127.0.0.1:8000/hook", "http://169.254.169.254/latest/meta-data"):
            answer = client.post("/api/webhooks", json={"url": url}, headers=alice)
            assert answer.status_code == 400
            assert "loopback, private" in answer.text
            assert url not in answer.text
        assert client.get("/api/webhooks", headers=alice).json() == []
        # the page's form says the same, keeps what was typed, and makes nothing
        log_in(client, portal_settings, "bob")
        page = client.get("/webhooks")
        refused = client.post(
            "/webhooks",
            data={"url": "http://10.0.0.7/hook", "event_types": ["job.failed"],
                  "_csrf_token": form_token(page.text)},
        )  # fmt: skip
        assert refused.status_code == 400
        assert "loopback, private" in refused.text and "whsec_" not in refused.text
        assert 'value="http://10.0.0.7/hook"' in refused.text
        assert "No webhooks yet." in client.get("/webhooks").text


def test_the_page_shows_the_secret_once_and_send_again_reposts(hooks: Settings) -> None:
    with receiver(200) as hook, client_for(hooks) as client, running_sender(hooks):
        log_in(client, hooks, "alice")
        page = client.get("/webhooks")
        assert page.status_code == 200 and 'href="/webhooks"' in page.text
        made = client.post(
            "/webhooks",
            data={"url": hook.url, "event_types": ["job.completed"],
                  "_csrf_token": form_token(page.text)},
        )  # fmt: skip
        assert made.status_code == 200, made.text
        assert made.headers["cache-control"] == "no-store"
        secret = re.search(r"<code>(whsec_[A-Za-z0-9+/=]+)</code>", made.text)
        assert secret is not None
        assert secret.group(1) not in client.get("/webhooks").text  # shown once
        (sub,) = client.get("/api/webhooks", headers=csrf_headers(client)).json()
        announce(hooks, "alice")
        wait_for("the POST", lambda: len(hook.got) == 1)
        verify(secret.group(1), hook.got[0])
        wait_for("the log", lambda: '"state":"delivered"' in client.get(
            f"/api/webhooks/{sub['id']}/deliveries").text.replace(" ", ""))  # fmt: skip
        log = client.get(f"/webhooks/{sub['id']}")
        assert "job.completed" in log.text and "Send again" in log.text
        (delivery,) = client.get(f"/api/webhooks/{sub['id']}/deliveries").json()
        again = client.post(
            f"/webhooks/{sub['id']}/deliveries/{delivery['id']}/send-again",
            headers={**HTMX, **csrf_headers(client)},
        )
        assert again.status_code == 200 and "(queued again)" in again.text
        assert '<section id="deliveries">' in again.text and "<html" not in again.text
        wait_for("the second POST", lambda: len(hook.got) == 2)
        assert hook.got[1].body == hook.got[0].body
        # the API's send again answers its typed Struct (DeliveryQueued in the OpenAPI document)
        api_again = client.post(
            f"/api/webhooks/{sub['id']}/deliveries/{delivery['id']}/send-again",
            headers=csrf_headers(client),
        )
        assert api_again.status_code == 202, api_again.text
        assert api_again.json() == {"delivery_id": delivery["id"], "status": "queued"}
        wait_for("the third POST", lambda: len(hook.got) == 3)
    # someone else's delivery log is as missing as an unknown one
    with client_for(hooks) as other:
        log_in(other, hooks, "mallory")
        assert other.get(f"/webhooks/{sub['id']}").status_code == 404
        stolen = other.post(
            f"/webhooks/{sub['id']}/deliveries/{delivery['id']}/send-again",
            headers={**HTMX, **csrf_headers(other)},
        )
        assert stolen.status_code == 404


def test_a_pending_retry_survives_a_restart_and_vidflow_webhooks_send_delivers_it(
    hooks: Settings,
) -> None:
    """The first sender fails once and stops; ``vidflow webhooks send`` (what ``vidflow up``
    runs) finds the retry in the table, delivers it, and exits cleanly on SIGTERM. The event is
    not queued twice: the first sender committed its offsets after writing the row."""
    alice = user(hooks, "alice")
    slow = msgspec.structs.replace(
        hooks, webhooks=msgspec.structs.replace(hooks.webhooks, backoff_first=3.0)
    )
    with receiver(500, 200) as hook:
        with running_sender(slow):
            sub = subscribe(hooks, alice, hook.url)
            announce(hooks, alice)
            wait_for("the failed first POST", lambda: len(hook.got) == 1 and
                     bool(log_of(hooks, sub)) and log_of(hooks, sub)[0].attempts == 1)  # fmt: skip
        assert log_of(hooks, sub)[0].state == "pending"
        quiet = msgspec.structs.replace(
            slow, metrics=msgspec.structs.replace(slow.metrics, webhooks_port=0)
        )
        env = {**os.environ, **settings_environ(quiet)}
        process = subprocess.Popen(
            [sys.executable, "-m", "vidflow", "webhooks", "send"], env=env, cwd=ROOT,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            wait_for("the retry", lambda: len(hook.got) == 2, timeout=60)
            wait_for("the log", lambda: log_of(hooks, sub)[0].state == "delivered")
        finally:
            process.send_signal(signal.SIGTERM)
            output, _ = process.communicate(timeout=30)
    assert process.returncode == 0, output.decode(errors="replace")[-2000:]
    (delivery,) = log_of(hooks, sub)
    assert delivery.attempts == 2 and delivery.last_status == 200
    assert hook.got[0].headers["webhook-id"] == hook.got[1].headers["webhook-id"]
