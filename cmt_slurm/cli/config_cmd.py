"""``cmt config``: show the effective settings, so admins can see what the precedence rules produced."""

from __future__ import annotations

import dataclasses
from typing import Any

import click

from .context import CliContext, emit, pass_cli


@click.group("config")
def config() -> None:
    """Inspect the effective configuration (cmt.toml + CMT_* + flags)."""


@config.command("show")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_cli
def show(cli: CliContext, as_json: bool) -> None:
    """Validate the configuration and print every setting (the token is masked)."""
    s = cli.settings
    data: dict[str, Any] = {}
    for f in dataclasses.fields(s):
        value = getattr(s, f.name)
        if f.name == "token" and value:
            value = "********"
        elif f.name == "naming":
            value = [dataclasses.asdict(r) for r in value]
        elif value is not None and not isinstance(value, int | float | str | bool | list):
            value = str(value)
        data[f.name] = value
    data["effective_db_url"] = s.effective_db_url

    def human(d: dict[str, Any]) -> None:
        for k in sorted(d):
            click.echo(f"{k} = {d[k]!r}")

    emit(data, as_json, human)
