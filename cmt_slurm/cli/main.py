"""``cmt``: the admin command line, and its one error boundary."""

from __future__ import annotations

import importlib
import importlib.util
import sys
import traceback
from pathlib import Path
from typing import Any

import click

from .. import __version__
from ..errors import EXIT_CODES, CmtError
from .context import CliContext

# Subcommand groups live in their own modules and are imported only when used: `cmt image match` must
# not pay for Flask or SQLAlchemy. name -> (module, attribute, one-line help).
COMMANDS: dict[str, tuple[str, str, str]] = {
    "image": ("cmt_slurm.cli.image", "image", "Catalogue images: list, show, add, rm, verify, match."),
    "node": ("cmt_slurm.cli.node", "node", "Nodes: list, show, set-target, reimage, forget."),
    "events": ("cmt_slurm.cli.events", "events", "The audit trail of node and deployment events."),
    "lldp": ("cmt_slurm.cli.lldp", "lldp", "Decode LLDP frames and test naming templates."),
    "token": ("cmt_slurm.cli.token", "token", "Admin API tokens: create, list, revoke."),
    "server": ("cmt_slurm.cli.server", "server", "Run the boot server; generate dnsmasq config."),
    "slurm": ("cmt_slurm.cli.slurm", "slurm", "Slurm integration: config, prolog/epilog hooks, watcher."),
    "lab": ("cmt_slurm.cli.lab", "lab", "The virtual lab: QEMU nodes on a private bridge."),
    "db": ("cmt_slurm.cli.db", "db", "Database: upgrade (migrations), current revision."),
    "config": ("cmt_slurm.cli.config_cmd", "config", "Show the effective configuration."),
}


def _available(name: str) -> bool:
    return importlib.util.find_spec(COMMANDS[name][0]) is not None


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(n for n in COMMANDS if _available(n))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS or not _available(cmd_name):
            return None
        module, attr, _ = COMMANDS[cmd_name]
        cmd = getattr(importlib.import_module(module), attr)
        assert isinstance(cmd, click.Command)
        return cmd

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Help text from the table, so `cmt --help` does not import every subcommand.
        rows = [(n, COMMANDS[n][2]) for n in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


EPILOG = "\b\nExit codes:\n" + "\n".join(f"  {code}  {text}" for code, text in EXIT_CODES.items())


@click.group(cls=LazyGroup, epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    envvar="CMT_CONFIG",
    help="cmt.toml to read (default: $CMT_CONFIG, else /etc/cmt/cmt.toml if present).",
)
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.version_option(__version__, prog_name="cmt")
@click.pass_context
def cli(ctx: click.Context, config_path: Path | None, debug: bool) -> None:
    """cmt-slurm: the OS image a Slurm job asks for, on the nodes it runs on."""
    ctx.obj = CliContext(config_path=config_path, debug=debug)


def main(argv: list[str] | None = None) -> Any:
    """Run ``cmt``; the only place where errors become messages and exit codes."""
    debug = "--debug" in (sys.argv[1:] if argv is None else argv)
    try:
        return cli.main(args=argv, prog_name="cmt", standalone_mode=False)
    except CmtError as exc:
        if debug:
            traceback.print_exc()
        # A file with several problems lists them all (one line each), so one run fixes them all.
        problems = exc.details.get("problems")
        lines = [str(p) for p in problems] if isinstance(problems, list) and problems else [exc.message]
        for line in lines:
            click.echo(f"error: {line}", err=True)
        if exc.hint:
            click.echo(f"hint: {exc.hint}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(2 if isinstance(exc, click.UsageError) else exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:  # the boundary: anything unexpected is an internal error, exit 1
        if debug:
            traceback.print_exc()
        click.echo(f"error: internal error: {type(exc).__name__}: {exc}", err=True)
        click.echo("hint: run again with --debug for a traceback, and report it", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
