"""``cmt events``: the audit trail, read from the database; ``--follow`` polls for new rows."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import click

from ..store.events import Event
from .admin_db import db_option, json_option, open_provisioner, when
from .context import CliContext, emit, pass_cli

#: Replaced by tests; the pause between polls with --follow.
sleep = time.sleep


def _line(e: Event) -> str:
    change = f"{e.from_state or '-'} -> {e.to_state}" if e.to_state or e.from_state else ""
    detail = " ".join(f"{k}={v}" for k, v in e.detail.items() if v not in (None, "", [], {}))
    parts = [
        f"{e.id:>6}",
        when(e.at),
        f"{e.node or '-':<12}",
        f"{e.kind:<12}",
        change,
        detail,
        f"({e.actor})",
    ]
    return "  ".join(p for p in parts if p)


def _print(found: list[Event]) -> None:
    if not found:
        click.echo("(no events)")
    for e in found:
        click.echo(_line(e))


@click.command("events")
@click.option("--node", help="Only this node's events.")
@click.option(
    "--limit", type=click.IntRange(1, 1000), default=50, show_default=True, help="How many, newest last."
)
@click.option("--since", "since_id", type=int, help="Only events after this id.")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new events until Ctrl-C.")
@click.option(
    "--interval", type=click.FloatRange(0.1, 60), default=1.0, show_default=True, help="Poll period, s."
)
@db_option
@json_option
@pass_cli
def events(
    cli: CliContext,
    *,
    node: str | None,
    limit: int,
    since_id: int | None,
    follow: bool,
    interval: float,
    db_url: str | None,
    as_json: bool,
) -> None:
    """The audit trail: every state change, conflict and refused token, oldest first.

    With --json: one JSON array; with --json --follow: one JSON object per line.
    """
    prov = open_provisioner(cli, db_url)
    found = prov.events(node=node, since_id=since_id, limit=limit)
    if not follow:
        emit([e.as_dict() for e in found], as_json, lambda _d: _print(found))
        return

    def show(batch: list[Event]) -> None:
        for e in batch:
            click.echo(json.dumps(e.as_dict(), sort_keys=True) if as_json else _line(e))
        sys.stdout.flush()

    show(found)
    last: Any = found[-1].id if found else (since_id if since_id is not None else prov.last_event_id())
    try:
        while True:
            sleep(interval)
            batch = prov.events(node=node, since_id=last, limit=1000)
            if batch:
                show(batch)
                last = batch[-1].id
    except KeyboardInterrupt:
        return  # Ctrl-C is how --follow ends: not an error
