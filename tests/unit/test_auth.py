"""Pure pieces of the portal's security: hashing, tokens, roles, where a login may send you."""

from __future__ import annotations

import pytest

from portal.auth import Viewer, hash_password, hash_token, needs_rehash, new_token, verify_password
from portal.login import safe_next


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
