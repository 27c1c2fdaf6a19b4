"""``cmt db``: the schema's migration state."""

from __future__ import annotations

import click

from ..store import head_revision
from .admin_db import db_option, json_option, open_store
from .context import CliContext, emit, pass_cli


@click.group("db")
def db() -> None:
    """Database: upgrade (run migrations), current (show the revision)."""


@db.command("upgrade")
@db_option
@pass_cli
def upgrade(cli: CliContext, db_url: str | None) -> None:
    """Run the packaged migrations up to the newest schema (safe to repeat; the server does it at start)."""
    store = open_store(cli, db_url, migrate=False)
    before = store.current_revision()
    store.upgrade()
    after = store.current_revision()
    if before == after:
        click.echo(f"{store.url}: already at revision {after} (head)")
    else:
        click.echo(f"{store.url}: upgraded {before or '(empty)'} -> {after} (head)")


@db.command("current")
@db_option
@json_option
@pass_cli
def current(cli: CliContext, db_url: str | None, as_json: bool) -> None:
    """The database's schema revision and the newest one this version of cmt ships."""
    store = open_store(cli, db_url, migrate=False)
    rev, head = store.current_revision(), head_revision()
    data = {"url": store.url, "revision": rev, "head": head, "up_to_date": rev == head}
    state = "up to date" if rev == head else "behind: run cmt db upgrade"
    emit(
        data,
        as_json,
        lambda _d: click.echo(f"{data['url']}: revision {rev or '(empty)'}, head {head} ({state})"),
    )
