"""Pure pieces of the portal's security: hashing, tokens, roles and scopes, expiry, where a login
may send you."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from portal.auth.accounts import AccountError, TokenInfo, check_token_request, parse_expiry
from portal.auth.credentials import (
    hash_password,
    hash_token,
    needs_rehash,
    new_token,
    verify_password,
)
from portal.auth.login import safe_next
from portal.auth.viewer import Viewer, may_hold, widest_scope


def test_password_hashes_are_salted_argon2_and_verify() -> None:
    first, second = hash_password("s3cret-pass"), hash_password("s3cret-pass")
    assert first.startswith("$argon2id$") and first != second
    assert verify_password(first, "s3cret-pass") and not verify_password(first, "wrong")
    assert not verify_password("not a hash", "s3cret-pass")
    assert not needs_rehash(first)


def test_tokens_are_random_and_stored_as_sha256() -> None:
    token = new_token()
    assert token.startswith("vf_") and len(token) > 40 and token != new_token()
    digest = hash_token(token)
    assert len(digest) == 64 and digest == hash_token(token) and token not in digest


def test_roles_decide_what_a_viewer_sees_and_does() -> None:
    admin = Viewer(id=1, username="root", role="admin")
    uploader = Viewer(id=2, username="alice", role="uploader")
    viewer = Viewer(id=3, username="vera", role="viewer")
    assert admin.owner_scope is None and admin.sees("anyone") and admin.can_upload
    assert uploader.owner_scope == "alice" and uploader.sees("alice")
    assert not uploader.sees("bob") and uploader.can_upload
    assert viewer.sees("vera") and not viewer.can_upload and not viewer.is_admin


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/videos/1?x=2", "/videos/1?x=2"),
        ("//evil.example/", "/"),
        ("https://evil.example/", "/"),
        ("/\\evil.example", "/"),
        ("", "/"),
    ],
)
def test_login_only_returns_to_this_site(target: str, expected: str) -> None:
    assert safe_next(target) == expected


def test_a_token_may_do_what_both_its_scope_and_its_users_role_allow() -> None:
    read = Viewer(id=1, username="root", role="admin", scope="read")
    assert not read.is_admin and not read.can_upload
    assert read.owner_scope is None  # it still sees what its user may see
    upload = Viewer(id=1, username="root", role="admin", scope="upload")
    assert upload.can_upload and not upload.is_admin and upload.owner_scope is None
    acting = Viewer(id=1, username="root", role="admin", scope="upload", writes=True)
    assert acting.owner_scope == "root" and not acting.sees("bob")  # acts on its own only
    full = Viewer(id=1, username="root", role="admin", scope="admin", writes=True)
    assert full.is_admin and full.owner_scope is None and full.sees("bob")
    # a scope never lifts a role (a user demoted after the token was issued)
    demoted = Viewer(id=2, username="vera", role="viewer", scope="admin")
    assert not demoted.can_upload and not demoted.is_admin and demoted.owner_scope == "vera"


def test_scopes_follow_the_role_ladder() -> None:
    assert [widest_scope(r) for r in ("admin", "uploader", "viewer", "???")] == [
        "admin",
        "upload",
        "read",
        "read",
    ]
    assert may_hold("admin", "admin") and may_hold("uploader", "upload")
    assert may_hold("uploader", "read") and may_hold("viewer", "read")
    assert not may_hold("uploader", "admin") and not may_hold("viewer", "upload")
    assert not may_hold("admin", "root")
    assert check_token_request("uploader", "ci", "upload") == "upload"
    for role, name, scope in (("viewer", "ci", "upload"), ("admin", "", "read"),
                              ("admin", "x" * 65, "read"), ("admin", "a\nb", "read")):  # fmt: skip
        with pytest.raises(AccountError):
            check_token_request(role, name, scope)


def test_expiry_is_a_duration_or_a_date_in_the_future() -> None:
    now = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    assert parse_expiry("", now) is None
    assert parse_expiry("30d", now) == now + timedelta(days=30)
    assert parse_expiry("12h", now) == now + timedelta(hours=12)
    assert parse_expiry("2026-12-31", now) == datetime(2026, 12, 31, tzinfo=UTC)
    for bad in ("0d", "2026-11-30", "2020-01-01", "tomorrow", "30", "99999d", "-1d"):
        with pytest.raises(AccountError):
            parse_expiry(bad, now)


def test_a_token_is_active_until_it_expires_or_is_revoked() -> None:
    now = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    info = TokenInfo(id=1, username="a", name="ci", scope="read", created_at=now,
                     expires_at=None, last_used_at=None, revoked_at=None)  # fmt: skip
    assert info.state(now) == "active"
    expiring = msgspec.structs.replace(info, expires_at=now + timedelta(seconds=1))
    assert expiring.state(now) == "active"
    assert expiring.state(now + timedelta(seconds=1)) == "expired"
    assert msgspec.structs.replace(expiring, revoked_at=now).state(now) == "revoked"
