"""``cmt token``: admin API tokens (stored hashed; the secret is printed once, at creation)."""

from __future__ import annotations

import click

from .admin_db import actor, db_option, json_option, open_provisioner, when
from .context import CliContext, emit, pass_cli, table


@click.group("token")
def token() -> None:
    """Admin API tokens: create, list, revoke."""


@token.command("create")
@click.argument("name")
@db_option
@json_option
@pass_cli
def create(cli: CliContext, name: str, db_url: str | None, as_json: bool) -> None:
    """Create token NAME and print its secret (only now: only its hash is stored).

    Use it as `Authorization: Bearer SECRET`, or as `token` in cmt.toml / CMT_TOKEN for the hooks.
    """
    secret = open_provisioner(cli, db_url).create_token(name, actor())
    if as_json:
        emit({"name": name, "token": secret}, True, print)
        return
    click.echo(secret)
    click.echo(f"token {name!r} created; the secret above is shown only once", err=True)


@token.command("list")
@db_option
@json_option
@pass_cli
def list_(cli: CliContext, db_url: str | None, as_json: bool) -> None:
    """Every token by name, with when it was created, last used and revoked (never the secret)."""
    found = open_provisioner(cli, db_url).list_tokens()
    rows = [
        {
            "name": t.name,
            "created": when(t.created),
            "last_used": when(t.last_used) if t.last_used else None,
            "revoked": when(t.revoked) if t.revoked else None,
        }
        for t in found
    ]
    emit(
        [t.as_dict() for t in found],
        as_json,
        lambda _d: table(rows, ["name", "created", "last_used", "revoked"]),
    )


@token.command("revoke")
@click.argument("name")
@db_option
@pass_cli
def revoke(cli: CliContext, name: str, db_url: str | None) -> None:
    """Revoke token NAME at once (every server process checks the database on each request)."""
    open_provisioner(cli, db_url).revoke_token(name, actor())
    click.echo(f"token {name!r} revoked")
