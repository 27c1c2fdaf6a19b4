"""``cmt-node``: commands that run on nodes (Slurm helper and RebootProgram) and in the live reimager.

Deliberately argparse, not click, and every subcommand imports its module lazily: slurmd runs
``cmt-node helper`` once per Feature line at every start, so start-up time matters.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import traceback

from ..errors import CmtError

# name -> (module, help). Each module provides ``add_<name>_arguments(parser)`` (optional) and
# ``run_<name>(args) -> int``. Only the chosen command's module is imported.
COMMANDS: dict[str, tuple[str, str]] = {
    "helper": (
        "cmt_slurm.agent.hooks_helper",
        "Slurm node_features helper: no argument prints active features",
    ),
    "features": ("cmt_slurm.agent.hooks_helper", "Print this node's Slurm features from /etc/cmt/node.json"),
    "reboot": ("cmt_slurm.agent.hooks_reboot", "Slurm RebootProgram: start the recorded reimage and return"),
    "ready": ("cmt_slurm.agent.hooks_ready", "Report the booted image and boot time to the server"),
    "agent": ("cmt_slurm.agent.main", "Run the live reimager (options from the kernel command line)"),
}


def chosen_command(argv: list[str]) -> str | None:
    """The subcommand named in ``argv`` (the first word that is one), without importing anything."""
    for word in argv:
        if word in COMMANDS:
            return word
        if not word.startswith("-"):
            return None
    return None


def _parser(chosen: str | None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cmt-node", description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_) in COMMANDS.items():
        p = sub.add_parser(name, help=help_)
        if name == chosen:
            getattr(importlib.import_module(module), f"add_{name}_arguments", _no_args)(p)
    return parser


def _no_args(parser: argparse.ArgumentParser) -> None:
    return None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    chosen = chosen_command(argv)
    parser = _parser(chosen)
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    module = importlib.import_module(COMMANDS[args.command][0])
    try:
        rc = getattr(module, f"run_{args.command}")(args)
        return int(rc or 0)
    except CmtError as exc:
        if args.debug:
            traceback.print_exc()
        print(f"cmt-node: error: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"hint: {exc.hint}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
