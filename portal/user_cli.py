"""``vidflow user create|token``: accounts for the portal and tokens for producers."""

from __future__ import annotations

import sys

import click

from portal.accounts import AccountError, create_user, issue_token
from portal.auth import ROLES, Role
from vidflow.settings import get_settings

__all__ = ["user"]


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
@click.option("--name", default="", help="What the token is for (shown nowhere secret).")
def token(username: str, name: str) -> None:
    """Print a new API token for USERNAME (shown once: only its hash is kept)."""
    try:
        click.echo(issue_token(get_settings(), username, name))
    except AccountError as exc:
        raise click.ClickException(str(exc)) from None
