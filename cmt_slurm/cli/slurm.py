"""``cmt slurm``: generate Slurm's configuration from the catalogue; the controller-side hooks."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

import click

from .context import CliContext, pass_cli


@click.group("slurm")
def slurm() -> None:
    """Slurm integration: config generation, PrologSlurmctld/EpilogSlurmctld hooks, the drain watcher."""


def job_submit_lua() -> str:
    """The shipped slurm/job_submit.lua (package data, so an installed cmt can write it)."""
    return resources.files("cmt_slurm.slurm").joinpath("job_submit.lua").read_text()


@slurm.command("config")
@click.option(
    "--catalogue",
    "catalogue_dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Directory of image manifests (setting: catalogue_dir).",
)
@click.option(
    "--mode", type=click.Choice(["helpers", "prolog"]), help="Integration mode (setting: slurm_mode)."
)
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    help="Write the files into this directory (the one holding slurm.conf) instead of printing them.",
)
@click.option(
    "--wrapper-dir",
    default="/usr/local/sbin",
    show_default=True,
    help="Where the hook wrapper scripts will be installed on nodes and controller.",
)
@pass_cli
def config(
    cli: CliContext, catalogue_dir: Path | None, mode: str | None, out: Path | None, wrapper_dir: str
) -> None:
    """Generate helpers.conf, cmt-slurm.conf (for slurm.conf's Include), cmt_catalogue.lua,
    job_submit.lua and the hook wrappers; print the Features= for NodeName lines.

    \b
    In slurm.conf:  Include <dir>/cmt-slurm.conf
    Install the cmt-node-* wrappers on every node and cmt-*-ctld on the controller, in --wrapper-dir.
    """
    from ..catalogue import load_catalogue  # noqa: PLC0415 - `cmt --help` must stay light
    from ..slurm.confgen import ConfigOptions, generate  # noqa: PLC0415

    s = cli.with_overrides(catalogue_dir=catalogue_dir, slurm_mode=mode)
    cat = load_catalogue(s.catalogue_dir)
    cfg = generate(
        cat,
        ConfigOptions(
            mode=s.slurm_mode,
            node_command=s.node_command,
            cmt_command=s.cmt_command,
            wrapper_dir=wrapper_dir,
            image_bandwidth_mbps=s.image_bandwidth_mbps,
            reimage_overhead_s=s.reimage_overhead_s,
        ),
    )
    files = {**cfg.files(), "job_submit.lua": job_submit_lua()}
    if out is None:
        for name, text in files.items():
            click.echo(f"==> {name} <==")
            click.echo(text, nl=False)
            click.echo()
    else:
        out.mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            path = out / name
            tmp = path.with_name(f".{name}.tmp")
            tmp.write_text(text)
            os.chmod(tmp, 0o755 if name in cfg.wrappers else 0o644)
            tmp.replace(path)
            click.echo(f"wrote {path}", err=True)
    click.echo(f"NodeName Features={cfg.node_features}" if cfg.node_features else "NodeName Features= (none)")
