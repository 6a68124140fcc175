"""Portal hardening (issue 9) on real PostgreSQL, MinIO and Kafka: whose address a request is
(forwarded headers only from trusted proxies), the login throttle, error pages, caching,
sessions, and file names at upload creation and wherever they are listed."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import httpx
import msgspec
import pytest
from litestar.stores.file import FileStore
from litestar.testing import TestClient

from connectors.storage import make_client
from core.errors import is_public
from core.settings import Settings, settings_environ
from portal.app import create_app
from portal.auth.accounts import create_user, issue_token
from tests.flows import ROOT, free_port, wait_http
from tests.integration.test_portal_auth import HTML, add_video, client_for
from tests.portal_login import PASSWORD, csrf_headers, form_token, log_in

pytestmark = pytest.mark.integration

FREE_PER_ADDRESS = 10  # LoginThrottle's defaults, as the portal runs it
FREE_PER_ACCOUNT = 5


@contextmanager
def served_portal(settings: Settings, **env: str) -> Iterator[str]:
    """``vidflow portal serve`` as deployed (uvicorn in its own process); yields its base URL."""
    port = free_port()
    environ = {**settings_environ(settings), "PATH": "/usr/bin:/bin", "HOME": str(Path.home())}
    server = subprocess.Popen(
        [sys.executable, "-m", "vidflow", "portal", "serve", "--port", str(port)],
        cwd=ROOT, env={**environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"
        wait_http(f"{base}/healthz")
        yield base
    finally:
        server.terminate()
        server.wait(10)


def _try_login(client: httpx.Client, username: str, forwarded_for: str | None = None) -> int:
    token = form_token(client.get("/login").text)
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
    form = {"username": username, "password": "guess", "_csrf_token": token}
    return client.post("/login", data=form, headers=headers).status_code


def test_a_forwarded_for_header_does_not_bypass_the_login_limit(portal_settings: Settings) -> None:
    """Observation 8: no trusted proxy is configured, so X-Forwarded-For is the client's word."""
    with served_portal(portal_settings) as base, httpx.Client(base_url=base) as client:
        codes = [
            _try_login(client, f"user{i}", f"198.51.100.{i}") for i in range(FREE_PER_ADDRESS + 1)
        ]
    assert codes == [401] * FREE_PER_ADDRESS + [429]


def test_behind_a_trusted_proxy_the_forwarded_address_counts_and_accounts_hold_across_them(
    portal_settings: Settings,
) -> None:
    with (
        served_portal(portal_settings, VIDFLOW_PORTAL_TRUSTED_PROXIES="127.0.0.1") as base,
        httpx.Client(base_url=base) as client,
    ):
        one = "203.0.113.7"
        codes = [_try_login(client, f"spray{i}", one) for i in range(FREE_PER_ADDRESS + 1)]
        assert codes == [401] * FREE_PER_ADDRESS + [429]
        # another client behind the same proxy is another address
        assert _try_login(client, "spray-x", "203.0.113.8") == 401
        # the proxy's own chain: the client's claim on the left is not believed
        assert _try_login(client, "spray-y", f"203.0.113.99, {one}") == 429
        # one account guessed from many addresses is limited as one account
        victim = [_try_login(client, "victim", f"192.0.2.{i}") for i in range(FREE_PER_ACCOUNT)]
        assert victim == [401] * FREE_PER_ACCOUNT
        assert _try_login(client, "victim", "192.0.2.200") == 429


def test_the_login_limit_answers_a_page_with_the_form_and_the_delay_grows(
    portal_settings: Settings,
) -> None:
    create_user(portal_settings, "alice", PASSWORD, "uploader")
    app = create_app(portal_settings)
    now = [time.time()]
    app.state.login_throttle.clock = lambda: now[0]
    with TestClient(app=app, base_url="http://testserver.local") as client:
        token = form_token(client.get("/login").text)
        wrong = {"username": "alice", "password": "nope", "_csrf_token": token}
        codes = [client.post("/login", data=wrong).status_code for _ in range(FREE_PER_ACCOUNT)]
        assert codes == [401] * FREE_PER_ACCOUNT
        refused = client.post("/login", data={**wrong, "password": PASSWORD})  # even the right one
        assert refused.status_code == 429
        assert refused.headers["content-type"].startswith("text/html")
        first_wait = int(refused.headers["retry-after"])
        assert first_wait > 0 and f"try again in {first_wait} second" in refused.text
        assert 'name="password"' in refused.text and 'value="alice"' in refused.text  # the form
        now[0] += first_wait
        assert client.post("/login", data=wrong).status_code == 401
        again = client.post("/login", data=wrong)
        assert again.status_code == 429 and int(again.headers["retry-after"]) == 2 * first_wait
        now[0] += 2 * first_wait
        ok = client.post("/login", data={**wrong, "password": PASSWORD}, follow_redirects=False)
        assert ok.status_code == 303
        # a success starts the account afresh
        out = client.post("/logout", headers=csrf_headers(client), follow_redirects=False)
        assert out.status_code == 303
        token = form_token(client.get("/login").text)
        fresh = {**wrong, "_csrf_token": token}
        assert client.post("/login", data=fresh).status_code == 401


def test_errors_are_pages_for_browsers_and_json_for_the_api(portal_settings: Settings) -> None:
    mine = add_video(portal_settings, "vera", "vera.mp4")
    with client_for(portal_settings) as client:
        log_in(client, portal_settings, "vera", "viewer")
        for path, status in (("/no-such-page", 404), ("/videos/nope", 404), ("/upload", 403)):
            page = client.get(path, headers=HTML)
            assert page.status_code == status, path
            assert page.headers["content-type"].startswith("text/html"), path
            assert '<a class="brand" href="/">' in page.text and "<h1>" in page.text, path
        for path in ("/api/no-such-thing", "/api/videos/nope"):
            api = client.get(path, headers=HTML)
            assert api.status_code == 404 and api.json()["status_code"] == 404, path
        headers = csrf_headers(client)
        refused = client.post("/api/uploads", json={"filename": "a", "size": 1}, headers=headers)
        assert refused.status_code == 403 and refused.json()["status_code"] == 403
        action = client.post(f"/videos/{mine}/cancel", headers={**headers, **HTML})
        assert action.status_code == 403 and action.headers["content-type"].startswith("text/html")


def test_an_unexpected_failure_is_a_page_without_its_detail(portal_settings: Settings) -> None:
    create_user(portal_settings, "robot", PASSWORD, "uploader")
    token = issue_token(portal_settings, "robot", "t")
    # PostgreSQL stops answering: authenticating the token fails inside the portal
    down = msgspec.structs.replace(
        portal_settings,
        postgres=msgspec.structs.replace(portal_settings.postgres, port=free_port()),
    )
    auth = {"Authorization": f"Bearer {token}"}
    with client_for(down) as client:
        page = client.get("/", headers={**auth, **HTML})
        assert page.status_code == 500 and page.headers["content-type"].startswith("text/html")
        assert "Something went wrong" in page.text
        api = client.get("/api/videos", headers=auth)
        assert api.status_code == 500
        assert api.json() == {"status_code": 500, "detail": "Something went wrong"}
        for text in (page.text, api.text):
            assert "Traceback" not in text and "connection" not in text.lower()
            assert str(down.postgres.port) not in text


def test_authenticated_answers_are_not_stored_by_caches(portal_settings: Settings) -> None:
    with client_for(portal_settings) as client:
        log_in(client, portal_settings, "alice", "uploader")
        for path in ("/", "/upload", "/api/videos", "/no-such-page"):
            assert client.get(path).headers["cache-control"] == "no-store", path
        assert "no-store" not in client.get("/static/portal.css").headers.get("cache-control", "")


def _session_files(settings: Settings) -> list[Path]:
    folder = Path(settings.home) / "portal" / "sessions"
    return sorted(folder.iterdir()) if folder.exists() else []


def test_anonymous_requests_store_no_session(portal_settings: Settings) -> None:
    with client_for(portal_settings) as client:
        for path in ("/login", "/", "/api/videos", "/healthz", "/static/portal.css", "/nope"):
            client.get(path, headers=HTML)
        token = form_token(client.get("/login").text)
        client.post("/login", data={"username": "x", "password": "y", "_csrf_token": token})
        assert _session_files(portal_settings) == []
        assert "vidflow_session" not in client.cookies
        log_in(client, portal_settings, "alice", "viewer")
        assert len(_session_files(portal_settings)) == 1
        client.post("/logout", headers=csrf_headers(client), follow_redirects=False)
        assert _session_files(portal_settings) == []


def test_expired_sessions_are_purged(portal_settings: Settings) -> None:
    folder = Path(portal_settings.home) / "portal" / "sessions"
    folder.mkdir(parents=True)
    store = FileStore(folder)
    # expired an hour ago (was: expiring in 1 s, then a 1.5 s sleep for it to pass)
    asyncio.run(store.set("abandoned-long-ago", b"{}", expires_in=timedelta(hours=-1)))
    assert len(_session_files(portal_settings)) == 1  # on disk until something purges it
    with client_for(portal_settings) as client:
        log_in(client, portal_settings, "alice", "viewer")
        files = _session_files(portal_settings)
        assert len(files) == 1 and "abandoned" not in files[0].name
        assert asyncio.run(store.get("abandoned-long-ago")) is None


def _multipart_uploads(settings: Settings) -> list[str]:
    client = make_client(settings.storage)
    listed = client._list_multipart_uploads(settings.storage.bucket)
    return [u.object_name for u in listed.uploads]


def _objects(settings: Settings) -> list[str]:
    client = make_client(settings.storage)
    found = client.list_objects(settings.storage.bucket, recursive=True)
    return [o.object_name for o in found if o.object_name]


@pytest.mark.parametrize(
    "filename", ["clip\x00.mp4", "new\nline.mp4", "x" * 200_000], ids=["nul", "newline", "200kb"]
)
def test_an_invalid_filename_is_refused_before_storage(
    portal_settings: Settings, filename: str
) -> None:
    """Observations 9 and 10: 400, and nothing left in MinIO (the 200 KB name is refused, not
    cut: what the user named is what is announced, or nothing)."""
    before = (_multipart_uploads(portal_settings), _objects(portal_settings))
    with client_for(portal_settings) as client:
        log_in(client, portal_settings, "alice", "uploader")
        answer = client.post(
            "/api/uploads", json={"filename": filename, "size": 10}, headers=csrf_headers(client)
        )
        assert answer.status_code == 400, answer.text[:300]
        assert answer.json()["status_code"] == 400 and len(answer.text) < 2000
        assert '<tr id="upload-' not in client.get("/upload").text  # no upload row either
    assert (_multipart_uploads(portal_settings), _objects(portal_settings)) == before


def test_filenames_are_shown_without_bidi_overrides_and_bounded(portal_settings: Settings) -> None:
    tricky = "invoice\u202efdp.exe"
    huge = "y" * 200_000
    video = add_video(portal_settings, "alice", tricky)
    add_video(portal_settings, "alice", huge)
    with client_for(portal_settings) as client:
        log_in(client, portal_settings, "alice", "uploader")
        created = client.post(
            "/api/uploads",
            json={"filename": "upload\u202e4pm.exe", "size": 10},
            headers=csrf_headers(client),
        )
        assert created.status_code == 201, created.text
        pages = [client.get(p).text for p in ("/", f"/videos/{video}", "/upload")]
        listed = client.get("/api/videos").json()["videos"]
        state = client.get(f"/api/uploads/{created.json()['upload_id']}").json()
    for text in [*pages, str(listed), state["filename"]]:
        assert "\u202e" not in text
    assert "invoicefdp.exe" in pages[0] and "invoicefdp.exe" in pages[1]
    assert "upload4pm.exe" in pages[2] and state["filename"] == "upload4pm.exe"
    assert len(pages[0]) < 50_000  # the 200 KB name does not bloat the list
    assert sorted(len(v["filename"]) for v in listed) == [len("invoicefdp.exe"), 255]


def test_an_upload_records_its_sender_on_the_object(portal_settings: Settings) -> None:
    data = b"0123456789"
    with client_for(portal_settings) as client:
        log_in(client, portal_settings, "alice", "uploader")
        auth = csrf_headers(client)
        created = client.post("/api/uploads", json={"filename": "a.mp4", "size": 10}, headers=auth)
        assert created.status_code == 201, created.text
        upload_id = created.json()["upload_id"]
        urls = client.post(f"/api/uploads/{upload_id}/parts", json={"numbers": [1]}, headers=auth)
        assert httpx.put(urls.json()["urls"][0]["url"], content=data).status_code == 200
        done = client.post(f"/api/uploads/{upload_id}/complete", headers=auth)
        assert done.status_code == 200, done.text
    store = make_client(portal_settings.storage)
    stat = store.stat_object(portal_settings.storage.bucket, f"incoming/{upload_id}/source")
    assert stat.metadata is not None
    assert stat.metadata["x-amz-meta-vidflow-owner"] == "alice"


def test_a_nul_in_a_login_name_or_an_address_is_a_client_error(portal_settings: Settings) -> None:
    with client_for(portal_settings) as client:
        token = form_token(client.get("/login").text)
        form = {"username": "a\x00", "password": "x", "_csrf_token": token}
        nul = client.post("/login", data=form)
        assert nul.status_code == 401
        log_in(client, portal_settings, "alice", "uploader")
        for path in ("/videos/a%00b", "/?q=a%00b"):
            answer = client.get(path, headers=HTML)
            assert answer.status_code == 400 and "contains a NUL" in answer.text, path
        for path in ("/api/videos/a%00b", "/api/uploads/a%00b", "/api/videos?q=%00"):
            answer = client.get(path, headers=HTML)
            assert answer.status_code == 400 and is_public(answer.json()["detail"]), path
