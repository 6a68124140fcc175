"""API tokens on real PostgreSQL (and Kafka/MinIO where an allowed action produces or uploads):
scopes (read ⊂ upload ⊂ admin, never above the user's role), expiry, revocation, the
once-a-minute last-use stamp, the migration of old tokens, the CLI and the portal page."""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from alembic import command
from sqlalchemy import create_engine, text, update

from core.settings import Settings, settings_environ
from portal.auth.accounts import AccountError, create_user, issue_token, list_tokens, revoke_token
from portal.migrate import alembic_config, upgrade
from portal.models import ApiToken
from tests.flows import ROOT
from tests.integration.test_portal_auth import add_video, client_for
from tests.portal_login import PASSWORD, csrf_headers, form_token, log_in

pytestmark = pytest.mark.integration

HTMX = {"HX-Request": "true"}
UPLOAD = {"filename": "clip.mp4", "size": 10}
TOKEN = re.compile(r"vf_[A-Za-z0-9_-]{40,}")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def sql(settings: Settings, statement: Any, **params: Any) -> list[Any]:
    """Run one statement on the test database; rows if it returns any."""
    engine = create_engine(settings.postgres.url)
    try:
        with engine.begin() as conn:
            result = conn.execute(statement, params)
            return list(result) if result.returns_rows else []
    finally:
        engine.dispose()


def test_a_read_token_lists_videos_but_cannot_upload_or_act(portal_settings: Settings) -> None:
    mine = add_video(portal_settings, "robot", "robot.mp4")
    create_user(portal_settings, "robot", PASSWORD, "uploader")
    auth = bearer(issue_token(portal_settings, "robot", "dashboard", "read"))
    with client_for(portal_settings) as client:
        listing = client.get("/api/videos", headers=auth)
        assert listing.status_code == 200
        assert [v["video_id"] for v in listing.json()["videos"]] == [mine]
        assert client.get(f"/api/videos/{mine}", headers=auth).status_code == 200
        assert client.post("/api/uploads", json=UPLOAD, headers=auth).status_code == 403
        assert client.get("/upload", headers=auth).status_code == 403
        for action in ("cancel", "reprocess"):
            assert client.post(f"/videos/{mine}/{action}", headers=auth).status_code == 403
        job = client.post(f"/api/videos/{mine}/jobs", json={}, headers=auth)
        assert job.status_code == 403
        # the same user's upload token may do all of it
        upload = bearer(issue_token(portal_settings, "robot", "camera", "upload"))
        assert client.post("/api/uploads", json=UPLOAD, headers=upload).status_code == 201
        assert client.post(f"/videos/{mine}/cancel", headers=upload).status_code == 201


def test_an_upload_token_of_an_admin_reaches_no_admin_page_nor_others_videos(
    portal_settings: Settings,
) -> None:
    own = add_video(portal_settings, "root", "root.mp4")
    theirs = add_video(portal_settings, "bob", "bob.mp4")
    create_user(portal_settings, "root", PASSWORD, "admin")
    auth = bearer(issue_token(portal_settings, "root", "ingest-box", "upload"))
    with client_for(portal_settings) as client:
        for page in ("/operations", "/api/operations", "/dead-letters"):
            assert client.get(page, headers=auth).status_code == 403, page
        replay = client.post("/api/dead-letters/x/replay", headers=auth)
        assert replay.status_code == 403
        # it reads what its user may see, and acts on its user's own videos only
        listed = {v["video_id"] for v in client.get("/api/videos", headers=auth).json()["videos"]}
        assert listed == {own, theirs}
        assert client.post(f"/videos/{theirs}/cancel", headers=auth).status_code == 404
        assert client.post(f"/videos/{own}/cancel", headers=auth).status_code == 201
        assert client.post("/api/uploads", json=UPLOAD, headers=auth).status_code == 201
        admin = bearer(issue_token(portal_settings, "root", "ops", "admin"))
        assert client.get("/dead-letters", headers=admin).status_code == 200
        assert client.post(f"/videos/{theirs}/cancel", headers=admin).status_code == 201


def test_expired_and_revoked_tokens_get_401_with_a_short_reason(portal_settings: Settings) -> None:
    create_user(portal_settings, "robot", PASSWORD, "uploader")
    soon = issue_token(
        portal_settings, "robot", "soon", "read", datetime.now(UTC) + timedelta(hours=1)
    )
    gone = issue_token(portal_settings, "robot", "gone", "read")
    with client_for(portal_settings) as client:
        assert client.get("/api/videos", headers=bearer(soon)).status_code == 200
        assert client.get("/api/videos", headers=bearer(gone)).status_code == 200
        sql(
            portal_settings,
            update(ApiToken)
            .where(ApiToken.name == "soon")
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1)),
        )
        revoke_token(portal_settings, "robot", "gone")
        for token, reason in ((soon, "API token expired"), (gone, "API token revoked")):
            answer = client.get("/api/videos", headers=bearer(token))
            assert answer.status_code == 401
            assert answer.headers["content-type"].startswith("application/json")
            assert answer.json()["detail"] == reason
            assert answer.headers["www-authenticate"].startswith("Bearer")
            assert (
                client.post("/api/uploads", json=UPLOAD, headers=bearer(token)).status_code == 401
            )


def test_no_token_above_the_users_role(portal_settings: Settings) -> None:
    create_user(portal_settings, "vera", PASSWORD, "viewer")
    create_user(portal_settings, "alice", PASSWORD, "uploader")
    for username, scope in (("vera", "upload"), ("vera", "admin"), ("alice", "admin")):
        with pytest.raises(AccountError, match="cannot hold"):
            issue_token(portal_settings, username, "x", scope)
    with pytest.raises(AccountError, match="scope must be"):
        issue_token(portal_settings, "alice", "x", "superuser")
    assert list_tokens(portal_settings, "vera") == []
    env = {**settings_environ(portal_settings), "PATH": "/usr/bin:/bin"}
    refused = subprocess.run(
        [sys.executable, "-m", "vidflow", "user", "token", "vera", "--name", "ci",
         "--scope", "upload"],
        env=env, cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    assert refused.returncode != 0 and "cannot hold" in refused.stderr
    assert not TOKEN.search(refused.stdout + refused.stderr)
    with client_for(portal_settings) as client:
        log_in(client, portal_settings, "vera", create=False)
        page = client.get("/tokens")
        assert page.status_code == 200 and 'value="read"' in page.text
        assert 'value="upload"' not in page.text  # not offered...
        forged = client.post(
            "/tokens",
            data={
                "name": "ci",
                "scope": "upload",
                "expires": "",
                "_csrf_token": form_token(page.text),
            },
        )
        assert forged.status_code == 403  # ...and refused when sent anyway
        assert not TOKEN.search(forged.text)
    assert list_tokens(portal_settings, "vera") == []


def test_cli_issues_lists_without_secrets_and_revokes(portal_settings: Settings) -> None:
    create_user(portal_settings, "carol", PASSWORD, "uploader")
    env = {**settings_environ(portal_settings), "PATH": "/usr/bin:/bin"}

    def vidflow(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "vidflow", "user", *args],
            env=env, cwd=ROOT, capture_output=True, text=True,
        )  # fmt: skip

    issued = vidflow("token", "carol", "--name", "ci", "--scope", "upload", "--expires", "30d")
    assert issued.returncode == 0, issued.stderr
    token = issued.stdout.strip()
    assert TOKEN.fullmatch(token)  # the token is the one line on stdout
    assert "upload token 'ci' for carol" in issued.stderr
    dated = vidflow("token", "carol", "--name", "nightly", "--expires", "2030-06-30")
    assert dated.returncode == 0, dated.stderr
    assert vidflow("token", "carol", "--name", "x", "--expires", "yesterday").returncode != 0

    with client_for(portal_settings) as client:
        assert client.get("/api/videos", headers=bearer(token)).status_code == 200
        listed = vidflow("tokens", "carol")
        assert listed.returncode == 0, listed.stderr
        lines = listed.stdout.splitlines()
        assert lines[0].split()[:4] == ["id", "name", "scope", "state"]
        ci = next(line for line in lines if " ci " in line)
        assert " upload " in ci and " active " in ci
        nightly = next(line for line in lines if " nightly " in line)
        assert " read " in nightly and "2030-06-30 00:00 UTC" in nightly
        digests = [
            row[0] for row in sql(portal_settings, text("SELECT token_sha256 FROM api_tokens"))
        ]
        for secret in (token, dated.stdout.strip(), *digests):
            assert secret not in listed.stdout

        revoked = vidflow("revoke-token", "carol", "ci")
        assert revoked.returncode == 0 and "revoked token" in revoked.stdout
        assert client.get("/api/videos", headers=bearer(token)).status_code == 401
        again = vidflow("tokens", "carol").stdout
        assert " revoked " in next(line for line in again.splitlines() if " ci " in line)
        nightly_id = nightly.split()[0]
        assert vidflow("revoke-token", "carol", nightly_id).returncode == 0
        assert "already revoked" in vidflow("revoke-token", "carol", nightly_id).stdout
        assert vidflow("revoke-token", "carol", "no-such-token").returncode != 0


def test_last_use_is_written_at_most_once_a_minute(portal_settings: Settings) -> None:
    create_user(portal_settings, "robot", PASSWORD, "uploader")
    auth = bearer(issue_token(portal_settings, "robot", "poller", "read"))

    def stamp() -> tuple[Any, str]:
        """``last_used_at`` and the row version (``xmin`` changes with every write)."""
        row = sql(portal_settings, text("SELECT last_used_at, xmin::text FROM api_tokens"))[0]
        return row[0], row[1]

    assert stamp()[0] is None
    with client_for(portal_settings) as client:
        assert client.get("/api/videos", headers=auth).status_code == 200
        first = stamp()
        assert first[0] is not None and datetime.now(UTC) - first[0] < timedelta(minutes=1)
        for _ in range(3):
            assert client.get("/api/videos", headers=auth).status_code == 200
        assert stamp() == first  # no write per request
        sql(portal_settings, text("UPDATE api_tokens SET last_used_at = now() - interval '61 s'"))
        assert client.get("/api/videos", headers=auth).status_code == 200
        assert datetime.now(UTC) - stamp()[0] < timedelta(seconds=30)


def test_old_tokens_keep_what_their_user_could_do(portal_settings: Settings) -> None:
    config = alembic_config(portal_settings)
    command.downgrade(config, "0003_dead_letter_replays")
    for number, role in enumerate(("admin", "uploader", "viewer")):
        sql(
            portal_settings,
            text("INSERT INTO users (username, password_hash, role) VALUES (:u, 'x', :r)"),
            u=f"user{number}", r=role,
        )  # fmt: skip
        sql(
            portal_settings,
            text(
                "INSERT INTO api_tokens (user_id, token_sha256, name)"
                " SELECT id, :digest, 'old' FROM users WHERE username = :u"
            ),
            digest=f"{number}" * 64, u=f"user{number}",
        )  # fmt: skip
    upgrade(portal_settings)
    scopes = sql(
        portal_settings,
        text(
            "SELECT u.role, t.scope, t.expires_at, t.revoked_at FROM api_tokens t"
            " JOIN users u ON u.id = t.user_id ORDER BY u.username"
        ),
    )
    assert [tuple(row) for row in scopes] == [
        ("admin", "admin", None, None),
        ("uploader", "upload", None, None),
        ("viewer", "read", None, None),
    ]


def test_the_portal_page_creates_shows_once_and_revokes(portal_settings: Settings) -> None:
    with client_for(portal_settings) as client:
        log_in(client, portal_settings, "alice", "uploader")
        page = client.get("/tokens")
        assert page.status_code == 200 and "API tokens" in page.text
        assert 'href="/tokens"' in page.text  # the nav link
        assert client.post("/tokens", data={"name": "x", "scope": "read"}).status_code == 403
        created = client.post(
            "/tokens",
            data={"name": "camera-1", "scope": "upload", "expires": "7d"},
            headers={**HTMX, **csrf_headers(client)},
        )
        assert created.status_code == 200, created.text
        assert created.headers["cache-control"] == "no-store"
        shown = TOKEN.findall(created.text)
        assert len(set(shown)) == 1, created.text
        token = shown[0]
        assert "camera-1" in created.text and "upload" in created.text
        assert "<html" not in created.text  # an HTMX request gets the fragment
        assert client.post("/api/uploads", json=UPLOAD, headers=bearer(token)).status_code == 201
        # shown once: the page never shows it again
        later = client.get("/tokens")
        assert token not in later.text and "camera-1" in later.text
        # a mistake is said in the section (htmx swaps only a 200) or the page (400)
        mistake = {"name": "camera-2", "scope": "read", "expires": "soon"}
        said = client.post("/tokens", data=mistake, headers={**HTMX, **csrf_headers(client)})
        assert said.status_code == 200 and "an expiry is like 30d" in said.text
        plain = client.post("/tokens", data={**mistake, "_csrf_token": form_token(later.text)})
        assert plain.status_code == 400 and "an expiry is like 30d" in plain.text
        assert not TOKEN.search(said.text + plain.text)
        assert [t.name for t in list_tokens(portal_settings, "alice")] == ["camera-1"]
        token_id = list_tokens(portal_settings, "alice")[0].id
        assert 'hx-confirm="' in later.text and f"/tokens/{token_id}/revoke" in later.text
        # a token cannot mint or revoke tokens, whatever its scope
        assert client.get("/tokens", headers=bearer(token)).status_code == 403
        minted = client.post(
            "/tokens", data={"name": "y", "scope": "upload"}, headers=bearer(token)
        )
        assert minted.status_code == 403

    with client_for(portal_settings) as other:
        log_in(other, portal_settings, "bob", "uploader")
        assert "camera-1" not in other.get("/tokens").text
        stolen = other.post(f"/tokens/{token_id}/revoke", headers=csrf_headers(other))
        assert stolen.status_code == 404
    assert list_tokens(portal_settings, "alice")[0].revoked_at is None

    with client_for(portal_settings) as client:
        log_in(client, portal_settings, "alice", create=False)
        revoked = client.post(
            f"/tokens/{token_id}/revoke", headers={**HTMX, **csrf_headers(client)}
        )
        assert revoked.status_code == 200 and "revoked" in revoked.text
        assert client.get("/api/videos", headers=bearer(token)).status_code == 401

    with client_for(portal_settings) as admin:
        log_in(admin, portal_settings, "root", "admin")
        create_user(portal_settings, "dave", PASSWORD, "uploader")
        dave_token = issue_token(portal_settings, "dave", "dave-cam", "upload")
        everyone = admin.get("/tokens").text
        assert "camera-1" in everyone and "dave-cam" in everyone and "alice" in everyone
        dave_id = list_tokens(portal_settings, "dave")[0].id
        answer = admin.post(f"/tokens/{dave_id}/revoke", headers=csrf_headers(admin))
        assert answer.status_code == 200
        assert admin.get("/api/videos", headers=bearer(dave_token)).status_code == 401
