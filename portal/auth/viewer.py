"""Who a request is: the :class:`Viewer` (``request.user``), its role and, for an API token,
its scope.

A token carries a scope (read ⊂ upload ⊂ admin) and a request made with it may do what both
the scope and its user's role allow: the guards and the owner filter ask the :class:`Viewer`,
which knows both, so no handler has to think about tokens.
"""

from __future__ import annotations

from typing import Literal, get_args

import msgspec

__all__ = ["ROLES", "SCOPES", "Role", "Scope", "Viewer", "may_hold", "widest_scope"]

Role = Literal["admin", "uploader", "viewer"]
ROLES: tuple[Role, ...] = get_args(Role)
Scope = Literal["read", "upload", "admin"]
SCOPES: tuple[Scope, ...] = get_args(Scope)
# Roles and scopes form one ladder: read ⊂ upload ⊂ admin, viewer ⊂ uploader ⊂ admin.
_ROLE_RANK: dict[str, int] = {"viewer": 0, "uploader": 1, "admin": 2}
_SCOPE_RANK: dict[str, int] = {"read": 0, "upload": 1, "admin": 2}


class Viewer(msgspec.Struct, frozen=True):
    """The authenticated user of a request (``request.user``).

    ``scope`` is the API token's (None for a browser session: the role alone decides).
    ``writes`` says the request changes something (not GET/HEAD/OPTIONS): a token below the
    admin scope still reads everything its admin user may see, but acts only on its own.
    """

    id: int
    username: str
    role: Role
    scope: Scope | None = None
    writes: bool = False

    @property
    def rank(self) -> int:
        """What this request may do, on the ladder read/viewer 0, upload/uploader 1, admin 2."""
        role = _ROLE_RANK.get(self.role, 0)
        return role if self.scope is None else min(role, _SCOPE_RANK.get(self.scope, 0))

    @property
    def is_admin(self) -> bool:
        """Operations on everyone's data: the admin role, and the admin scope for a token."""
        return self.rank >= _ROLE_RANK["admin"]

    @property
    def can_upload(self) -> bool:
        """Uploading, cancelling and reprocessing start work; viewers and read tokens watch."""
        return self.rank >= _ROLE_RANK["uploader"]

    @property
    def owner_scope(self) -> str | None:
        """The owner a query must filter on; None means every owner (admins)."""
        everyone = self.role == "admin" and (self.is_admin or not self.writes)
        return None if everyone else self.username

    def sees(self, owner: str) -> bool:
        """Whether a video owned by ``owner`` exists as far as this viewer can tell."""
        return self.owner_scope is None or owner == self.username


def widest_scope(role: str) -> Scope:
    """The widest scope a user of ``role`` may hold: what the role itself allows."""
    rank = _ROLE_RANK.get(role, 0)
    return next(scope for scope in SCOPES if _SCOPE_RANK[scope] == rank)


def may_hold(role: str, scope: str) -> bool:
    """Whether a user of ``role`` may be issued a token of ``scope`` (never above the role)."""
    return scope in _SCOPE_RANK and _SCOPE_RANK[scope] <= _ROLE_RANK.get(role, 0)
