"""What every ``cmt`` subcommand receives: settings, output mode, and the output helpers."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from ..config import Settings, load_settings


@dataclass
class CliContext:
    config_path: Path | None = None
    debug: bool = False
    overrides: dict[str, Any] = field(default_factory=dict)
    _settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        """Loaded on first use, so commands that need no settings never fail on a bad cmt.toml."""
        if self._settings is None:
            self._settings = load_settings(self.config_path, overrides=self.overrides)
        return self._settings

    def with_overrides(self, **overrides: Any) -> Settings:
        """Settings with this command's flags applied (flags win over cmt.toml and CMT_*)."""
        merged = {**self.overrides, **{k: v for k, v in overrides.items() if v is not None}}
        return load_settings(self.config_path, overrides=merged)


pass_cli = click.make_pass_decorator(CliContext, ensure=True)


def emit(data: Any, as_json: bool, human: Callable[[Any], None]) -> None:
    """Print ``data`` as JSON (stable keys, one document) or through ``human``."""
    if as_json:
        json.dump(data, sys.stdout, indent=2, sort_keys=True, default=str)
        sys.stdout.write("\n")
    else:
        human(data)


def table(rows: list[dict[str, Any]], columns: list[str]) -> None:
    """A plain, aligned text table; empty cells print as '-'."""
    if not rows:
        click.echo("(none)")
        return
    cells = [[("-" if r.get(c) in (None, "") else str(r.get(c))) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    click.echo("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    for row in cells:
        click.echo("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
