"""Who is asking, and what they may do: login and sessions, API tokens, accounts, and the
middleware and guards every other area of the portal relies on."""

from portal.auth.middleware import (
    ROLES,
    SCOPES,
    Role,
    Scope,
    Viewer,
    requires_admin,
    requires_session,
    requires_uploader,
    viewer_of,
)

__all__ = [
    "ROLES",
    "SCOPES",
    "Role",
    "Scope",
    "Viewer",
    "requires_admin",
    "requires_session",
    "requires_uploader",
    "viewer_of",
]
