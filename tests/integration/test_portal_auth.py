"""The portal's security layer on real PostgreSQL (and Kafka for the actions that produce):
login and sessions, ownership (another user's video does not exist), roles, CSRF, API tokens,
rate limits and security headers."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import msgspec
import pytest
from litestar.testing import TestClient
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from core import events as ev
from core.settings import Secret, Settings, settings_environ
from portal.app import create_app
from portal.auth.accounts import AccountError, create_user, ensure_admin, issue_token
from portal.auth.sessions import SESSION_COOKIE
from portal.models import Video
from tests.flows import ROOT
from tests.portal_login import PASSWORD, csrf_headers, form_token, log_in
from vidflow.pipeline import ensure_portal_login

pytestmark = pytest.mark.integration

HTML = {"Accept": "text/html,application/xhtml+xml"}
PROBE = ev.Probe(duration=2.0, width=426, height=240, fps=25.0, video_codec="h264")


def add_video(settings: Settings, owner: str, filename: str) -> str:
    """A projected video row owned by ``owner`` (with a verified source, so it can be redone)."""
    video_id = uuid.uuid4().hex
    engine = create_engine(settings.postgres.url)
    try:
        with Session(engine) as session, session.begin():
            session.add(
                Video(id=video_id, filename=filename, owner=owner, status="completed",
                      source_key=f"sources/{video_id}/source", size=10, sha256="ab" * 32,
                      probe=msgspec.to_builtins(PROBE),
                      master=f"hls/{video_id}/master.m3u8", created_ts=time.time())
            )  # fmt: skip
    finally:
        engine.dispose()
    return video_id


@contextmanager
def client_for(settings: Settings) -> Iterator[TestClient]:  # type: ignore[type-arg]
    scheme = "https" if settings.portal.tls else "http"  # Secure cookies need https to return
    with TestClient(app=create_app(settings), base_url=f"{scheme}://testserver.local") as client:
        yield client


def test_without_a_session_a_browser_is_sent_to_login_and_the_api_answers_401(
    portal_settings: Settings,
) -> None:
    with client_for(portal_settings) as client:
        page = client.get("/videos/abc?x=1", headers=HTML, follow_redirects=False)
        assert page.status_code == 303
        assert page.headers["location"] == "/login?next=%2Fvideos%2Fabc%3Fx%3D1"
        fragment = client.get("/", headers={"HX-Request": "true", "HX-Current-URL": "/?q=a"})
        assert fragment.status_code == 401 and fragment.headers["HX-Redirect"].startswith(
            "/login?next=%2F%3Fq%3Da"
        )
        api = client.get("/api/videos")
        assert api.status_code == 401 and api.headers["content-type"].startswith("application/json")
        assert client.get("/events").status_code == 401
        for public in ("/healthz", "/metrics", "/login", "/static/portal.css"):
            assert client.get(public).status_code == 200, public


def test_login_logout_and_session_cookie(portal_settings: Settings) -> None:
    create_user(portal_settings, "alice", PASSWORD, "uploader")
    with client_for(portal_settings) as client:
        client.cookies.set(SESSION_COOKIE, "planted-by-an-attacker", domain="testserver.local")
        token = form_token(client.get("/login").text)
        wrong = client.post(
            "/login", data={"username": "alice", "password": "nope", "_csrf_token": token}
        )
        assert wrong.status_code == 401 and "Wrong username or password" in wrong.text
        nobody = client.post(
            "/login", data={"username": "nobody", "password": "x", "_csrf_token": token}
        )
        assert nobody.status_code == 401
        ok = client.post(
            "/login",
            data={"username": "alice", "password": PASSWORD, "_csrf_token": token,
                  "next": "//evil.example/"},
            follow_redirects=False,
        )  # fmt: skip
        assert ok.status_code == 303 and ok.headers["location"] == "/"  # no open redirect
        cookie = next(c for c in ok.headers.get_list("set-cookie") if SESSION_COOKIE in c)
        assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Secure" not in cookie
        assert client.cookies[SESSION_COOKIE] != "planted-by-an-attacker"  # no fixation
        home = client.get("/", headers=HTML)
        assert home.status_code == 200 and "alice (uploader)" in home.text
        out = client.post("/logout", headers=csrf_headers(client), follow_redirects=False)
        assert out.status_code == 303 and out.headers["location"] == "/login"
        assert client.get("/", headers=HTML, follow_redirects=False).status_code == 303


def test_tls_setting_makes_cookies_secure(portal_settings: Settings) -> None:
    secure = msgspec.structs.replace(
        portal_settings, portal=msgspec.structs.replace(portal_settings.portal, tls=True)
    )
    create_user(secure, "alice", PASSWORD, "viewer")
    with client_for(secure) as client:
        page = client.get("/login")
        assert all("Secure" in c for c in page.headers.get_list("set-cookie"))
        ok = client.post(
            "/login",
            data={"username": "alice", "password": PASSWORD, "_csrf_token": form_token(page.text)},
            follow_redirects=False,
        )
        assert any(SESSION_COOKIE in c and "Secure" in c for c in ok.headers.get_list("set-cookie"))


def test_another_users_video_is_not_found(portal_settings: Settings) -> None:
    mine = add_video(portal_settings, "alice", "alice-holiday.mp4")
    theirs = add_video(portal_settings, "bob", "bob-secret.mp4")
    with client_for(portal_settings) as client:
        log_in(client, portal_settings, "alice", "uploader")
        listing = client.get("/").text
        assert "alice-holiday.mp4" in listing and "bob-secret.mp4" not in listing
        assert [v["video_id"] for v in client.get("/api/videos").json()["videos"]] == [mine]
        assert client.get(f"/videos/{mine}").status_code == 200
        headers = csrf_headers(client)
        for path in (f"/videos/{theirs}", f"/api/videos/{theirs}", f"/videos/{theirs}/events",
                     f"/videos/{theirs}/files/hls/{theirs}/master.m3u8"):  # fmt: skip
            assert client.get(path).status_code == 404, path
        for action in ("cancel", "reprocess"):
            response = client.post(f"/videos/{theirs}/{action}", headers=headers)
            assert response.status_code == 404, action
        assert client.post(f"/videos/{mine}/cancel", headers=headers).status_code == 201
    with client_for(portal_settings) as client:
        log_in(client, portal_settings, "root", "admin")
        listing = client.get("/").text
        assert "alice-holiday.mp4" in listing and "bob-secret.mp4" in listing
        assert client.get(f"/videos/{theirs}").status_code == 200
        assert client.get("/dead-letters").status_code == 200


def test_a_viewer_sees_own_videos_but_cannot_upload_or_act(portal_settings: Settings) -> None:
    mine = add_video(portal_settings, "vera", "vera.mp4")
    with client_for(portal_settings) as client:
        log_in(client, portal_settings, "vera", "viewer")
        assert client.get(f"/videos/{mine}").status_code == 200
        headers = csrf_headers(client)
        for action in ("cancel", "reprocess"):
            assert client.post(f"/videos/{mine}/{action}", headers=headers).status_code == 403
        upload = client.post(
            "/api/uploads", json={"filename": "a.mp4", "size": 10}, headers=headers
        )
        assert upload.status_code == 403
        assert client.get("/upload").status_code == 403
        assert client.get("/dead-letters").status_code == 403  # admins only


def test_a_form_without_csrf_token_is_refused(portal_settings: Settings) -> None:
    mine = add_video(portal_settings, "alice", "a.mp4")
    with client_for(portal_settings) as client:
        no_token = client.post("/login", data={"username": "alice", "password": PASSWORD})
        assert no_token.status_code == 403
        log_in(client, portal_settings, "alice", "uploader")
        assert client.post(f"/videos/{mine}/cancel").status_code == 403
        forged = {"x-csrftoken": "forged" + "0" * 80}
        assert client.post(f"/videos/{mine}/cancel", headers=forged).status_code == 403
        assert client.post("/logout", follow_redirects=False).status_code == 403
        assert client.get("/", headers=HTML).status_code == 200  # still logged in
        ok = client.post(f"/videos/{mine}/cancel", headers=csrf_headers(client))
        assert ok.status_code == 201


def test_api_tokens_act_for_their_user_without_cookies_or_csrf(portal_settings: Settings) -> None:
    mine = add_video(portal_settings, "robot", "robot.mp4")
    add_video(portal_settings, "alice", "alice.mp4")
    create_user(portal_settings, "robot", PASSWORD, "uploader")
    token = issue_token(portal_settings, "robot", "camera-1")
    with pytest.raises(AccountError):
        issue_token(portal_settings, "nobody", "x")
    with client_for(portal_settings) as client:
        auth = {"Authorization": f"Bearer {token}"}
        listing = client.get("/api/videos", headers=auth).json()
        assert [v["video_id"] for v in listing["videos"]] == [mine]
        assert client.post(f"/videos/{mine}/cancel", headers=auth).status_code == 201
        bad = client.get("/api/videos", headers={"Authorization": f"Bearer {token}x"})
        assert bad.status_code == 401 and bad.headers["www-authenticate"].startswith("Bearer")
        assert "set-cookie" not in bad.headers or SESSION_COOKIE not in bad.headers["set-cookie"]


def test_login_is_rate_limited(portal_settings: Settings) -> None:
    free = 10  # failures an address may make (LoginThrottle's default), whatever the accounts
    with client_for(portal_settings) as client:
        token = form_token(client.get("/login").text)
        forms = [
            {"username": f"guess{i}", "password": "guess", "_csrf_token": token}
            for i in range(free + 1)
        ]
        codes = [client.post("/login", data=form).status_code for form in forms]
        assert codes == [401] * free + [429]
        assert client.get("/login").status_code == 200  # only attempts are limited


def test_security_headers_on_every_response(portal_settings: Settings) -> None:
    with client_for(portal_settings) as client:
        for path in ("/login", "/healthz", "/static/portal.css", "/no-such-page", "/api/videos"):
            headers = client.get(path).headers
            csp = headers["content-security-policy"]
            assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp, path
            assert "unsafe-inline" not in csp and "media-src 'self' blob:" in csp
            assert headers["x-content-type-options"] == "nosniff"
            assert headers["referrer-policy"] == "same-origin"
            assert headers["x-frame-options"] == "DENY"


def test_user_commands_and_the_admin_of_vidflow_up(portal_settings: Settings) -> None:
    env = {**settings_environ(portal_settings), "PATH": "/usr/bin:/bin"}
    vidflow = [sys.executable, "-m", "vidflow", "user"]
    created = subprocess.run(
        [*vidflow, "create", "carol", "--role", "viewer", "--password-stdin"],
        input=f"{PASSWORD}\n", env=env, cwd=ROOT, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert "created viewer carol" in created.stdout
    again = subprocess.run(
        [*vidflow, "create", "carol", "--password-stdin"],
        input=f"{PASSWORD}\n", env=env, cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    assert again.returncode != 0 and "already exists" in again.stderr
    token = subprocess.run(
        [*vidflow, "token", "carol", "--name", "ci"],
        env=env, cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    admin = portal_settings.portal
    shown = f"{admin.admin_user} / {admin.admin_password.reveal()}"
    assert ensure_portal_login(portal_settings) == shown  # what `vidflow up` prints
    assert ensure_admin(portal_settings) is True  # left alone the second time
    changed = msgspec.structs.replace(
        portal_settings,
        portal=msgspec.structs.replace(portal_settings.portal, admin_password=Secret("other")),
    )
    assert ensure_admin(changed) is False
    with client_for(portal_settings) as client:
        auth = {"Authorization": f"Bearer {token}"}
        assert client.get("/api/videos", headers=auth).status_code == 200
        log_in(client, portal_settings, admin.admin_user, create=False,
               password=admin.admin_password.reveal())  # fmt: skip
