"""Run ``cmt`` in-process the way a shell would see it: the exit code, whether it returned or exited."""

from __future__ import annotations

from cmt_slurm.cli.main import main


def run(argv: list[str]) -> int:
    try:
        rc = main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    return int(rc or 0)
