"""Route guards by role (and token scope), and the typed ``request.user``."""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler

from portal.auth.viewer import Viewer

__all__ = ["requires_admin", "requires_session", "requires_uploader", "viewer_of"]


def viewer_of(connection: ASGIConnection[Any, Any, Any, Any]) -> Viewer:
    """``connection.user``, typed."""
    user = connection.user
    if not isinstance(user, Viewer):
        raise NotAuthorizedException("log in first")
    return user


def requires_uploader(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Guard: uploading, cancelling and reprocessing need the uploader or admin role (and an
    upload- or admin-scoped token)."""
    if not viewer_of(connection).can_upload:
        raise PermissionDeniedException("this needs the uploader or admin role")


def requires_admin(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Guard: operations on everyone's data need the admin role (and an admin-scoped token)."""
    if not viewer_of(connection).is_admin:
        raise PermissionDeniedException("this needs the admin role")


def requires_session(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Guard: tokens are managed by a person signed in, never with a token (a leaked token must
    not be able to mint a longer-lived one or revoke the others)."""
    viewer_of(connection)
    if connection.scope.get("auth") != "session":
        raise PermissionDeniedException("API tokens are managed from a signed-in session")
