"""Who is asking, and what they may do.

- :mod:`.viewer`: the :class:`Viewer` of a request, roles and token scopes.
- :mod:`.guards`: route guards by role and ``viewer_of(request)``.
- :mod:`.middleware`: the authentication middleware (a session's user or an API token's).
- :mod:`.credentials`: password and token hashing.
- :mod:`.login` (login and logout pages, :class:`~.login.LoginPages`), :mod:`.sessions`,
  :mod:`.throttle` (failed logins), :mod:`.tokens` (the API tokens page,
  :class:`~.tokens.TokenPages`), :mod:`.accounts` (users and tokens for the CLI).
- :mod:`.security` (CSRF, rate limits, headers) and :mod:`.forwarded` (who the client is
  behind a trusted proxy): the middleware around it all.

Every other area of the portal needs only the viewer and the guards, exported here.
"""

from portal.auth.guards import requires_admin, requires_session, requires_uploader, viewer_of
from portal.auth.viewer import ROLES, SCOPES, Role, Scope, Viewer

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
