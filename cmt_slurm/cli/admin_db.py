"""What ``cmt node``, ``cmt events``, ``cmt token`` and ``cmt db`` share: the head node's direct path to
the database (no server needed), with ``--db URL`` overriding ``db_url`` from the settings."""

from __future__ import annotations

import getpass
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

import click

from ..catalogue import Catalogue, load_catalogue
from ..config import Settings
from ..provisioner import Provisioner
from ..store import Store
from .context import CliContext

F = TypeVar("F", bound=Callable[..., Any])


def db_option(f: F) -> F:
    return click.option(
        "--db",
        "db_url",
        metavar="URL",
        help="SQLAlchemy database URL (default: db_url from cmt.toml / CMT_DB_URL, else the SQLite file in "
        "data_dir).",
    )(f)


def json_option(f: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON.")(f)


def settings_for(cli: CliContext, db_url: str | None, **overrides: Any) -> Settings:
    return cli.with_overrides(db_url=db_url, **overrides)


def _closed_with_command(store: Store) -> Store:
    ctx = click.get_current_context(silent=True)
    if ctx is not None:
        ctx.call_on_close(store.dispose)
    return store


def open_store(cli: CliContext, db_url: str | None, *, migrate: bool = True) -> Store:
    """The database, closed when the command ends."""
    return _closed_with_command(Store.open(settings_for(cli, db_url).effective_db_url, migrate=migrate))


def open_provisioner(
    cli: CliContext, db_url: str | None, *, catalogue: bool = False, **overrides: Any
) -> Provisioner:
    """A provisioner on the settings' database; the catalogue is loaded only when ``catalogue``."""
    settings = settings_for(cli, db_url, **overrides)
    cat = load_catalogue(settings.catalogue_dir) if catalogue else Catalogue()
    return Provisioner(_closed_with_command(Store.open(settings.effective_db_url)), cat, settings)


def actor() -> str:
    """Who the audit trail names for a command run on the head node."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def when(value: datetime | None) -> str:
    return "-" if value is None else value.strftime("%Y-%m-%d %H:%M:%S")
