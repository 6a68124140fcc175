"""``vidflow user create|token|tokens|revoke-token``: portal accounts and producers' tokens."""

from __future__ import annotations

import sys
from datetime import UTC, datetime

import click

from core.settings import get_settings
from portal.auth import ROLES, SCOPES, Role
from portal.auth.accounts import (
    AccountError,
    TokenInfo,
    create_user,
    issue_token,
    list_tokens,
    parse_expiry,
    revoke_token,
)

__all__ = ["user"]

TOKEN_COLUMNS = ("id", "name", "scope", "state", "created", "expires", "last used", "revoked")


@click.group()
def user() -> None:
    """Portal users and API tokens."""


@user.command()
@click.argument("username")
@click.option("--role", type=click.Choice(ROLES), default="uploader", show_default=True)
@click.option(
    "--password-stdin", is_flag=True, help="Read the password from standard input (scripts)."
)
def create(username: str, role: Role, password_stdin: bool) -> None:
    """Create USERNAME with a password (prompted unless --password-stdin)."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        create_user(get_settings(), username, password, role)
    except AccountError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"created {role} {username}")


@user.command()
@click.argument("username")
@click.option("--name", required=True, help="What the token is for (to list and revoke it by).")
@click.option(
    "--scope",
    type=click.Choice(SCOPES),
    default="read",
    show_default=True,
    help="read: see; upload: also upload, cancel, reprocess; admin: all the user may do.",
)
@click.option("--expires", default="", help="30d, 12h or a date such as 2026-12-31 (UTC).")
def token(username: str, name: str, scope: str, expires: str) -> None:
    """Print a new API token for USERNAME (shown once: only its hash is kept).

    The token is the only line on standard output, so scripts can capture it; what it may do
    goes to standard error.
    """
    try:
        expires_at = parse_expiry(expires)
        plain = issue_token(get_settings(), username, name, scope, expires_at)
    except AccountError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(plain)
    until = f"until {_when(expires_at)}" if expires_at else "with no expiry"
    click.echo(f"{scope} token {name!r} for {username}, {until}", err=True)


@user.command()
@click.argument("username")
def tokens(username: str) -> None:
    """List USERNAME's API tokens (never the tokens themselves: they are not kept)."""
    try:
        found = list_tokens(get_settings(), username)
    except AccountError as exc:
        raise click.ClickException(str(exc)) from None
    if not found:
        click.echo(f"{username} has no API tokens")
        return
    rows = [TOKEN_COLUMNS, *(_row(t) for t in found)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(TOKEN_COLUMNS))]
    for r in rows:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip())


@user.command("revoke-token")
@click.argument("username")
@click.argument("token_id")
def revoke(username: str, token_id: str) -> None:
    """Revoke USERNAME's token TOKEN_ID (its id from `vidflow user tokens`, or its name)."""
    try:
        info, newly = revoke_token(get_settings(), username, token_id)
    except AccountError as exc:
        raise click.ClickException(str(exc)) from None
    if newly:
        click.echo(f"revoked token {info.id} ({info.name}) of {username}")
    else:
        click.echo(f"token {info.id} ({info.name}) was already revoked at {_when(info.revoked_at)}")


def _row(t: TokenInfo) -> tuple[str, ...]:
    return (
        str(t.id),
        t.name,
        t.scope,
        t.state(),
        _when(t.created_at),
        _when(t.expires_at, "never"),
        _when(t.last_used_at, "never"),
        _when(t.revoked_at, "-"),
    )


def _when(moment: datetime | None, empty: str = "-") -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if moment else empty
