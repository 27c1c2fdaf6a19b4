"""``cmt slurm``: generate Slurm's configuration from the catalogue; the controller-side hooks."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import click

from .context import CliContext, pass_cli

if TYPE_CHECKING:
    from ..apiclient import ApiClient


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
@click.option(
    "--slurm-conf", metavar="PATH", help="Exported by the controller wrappers when slurm.conf is elsewhere."
)
@click.option(
    "--cmt-config", metavar="PATH", help="cmt.toml the controller wrappers use (server_url, token)."
)
@click.option(
    "--fast-start/--no-fast-start",
    default=True,
    show_default=True,
    help="helpers mode: PrologSlurmctld that starts a job as soon as its rebooted nodes are back.",
)
@pass_cli
def config(  # noqa: PLR0917 - one parameter per flag, as click passes them
    cli: CliContext,
    catalogue_dir: Path | None,
    mode: str | None,
    out: Path | None,
    wrapper_dir: str,
    slurm_conf: str | None,
    cmt_config: str | None,
    fast_start: bool,
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
            fast_start=fast_start,
            slurm_conf=slurm_conf,
            cmt_config=cmt_config,
            epilog_policy=s.epilog_policy,
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


def _api(cli: CliContext) -> ApiClient:
    from ..apiclient import ApiClient  # noqa: PLC0415

    s = cli.settings
    return ApiClient(s.server_url, token=s.token or None, timeout=10, retries=2)


@slurm.command("watch")
@click.option(
    "--interval",
    type=click.FloatRange(min=0.2),
    default=5.0,
    show_default=True,
    help="Seconds between passes.",
)
@click.option("--once", is_flag=True, help="One pass, then exit (cron, tests).")
@pass_cli
def watch(cli: CliContext, interval: float, once: bool) -> None:
    """Drain nodes the boot server reports failed (reason names the stage), requeue the jobs that
    waited for them, and resume nodes whose failure was cleared."""
    from ..slurm.client import SlurmCli  # noqa: PLC0415
    from ..slurm.watch import Watcher  # noqa: PLC0415

    def log(msg: str) -> None:
        click.echo(f"cmt slurm watch: {msg}", err=True)

    Watcher(SlurmCli(), _api(cli), log=log).run(interval, passes=1 if once else None)


def _job_timeout(cli: CliContext, timeout: float | None) -> float:
    if timeout is not None:
        return timeout
    from ..catalogue import load_catalogue  # noqa: PLC0415
    from ..slurm.confgen import resume_timeout  # noqa: PLC0415

    s = cli.settings
    return float(
        resume_timeout(load_catalogue(s.catalogue_dir), s.image_bandwidth_mbps, s.reimage_overhead_s)
    )


@slurm.command("prolog-ctld")
@click.option("--timeout", type=click.FloatRange(min=1), help="Seconds to wait (default: the ResumeTimeout).")
@pass_cli
def prolog_ctld(cli: CliContext, timeout: float | None) -> None:
    """PrologSlurmctld: hold the job until its nodes run what it asks for (exit 0), else fail it.

    helpers mode: wait for Slurm's own reboots (the job then starts at once, not at the next 30 s pass).
    prolog mode: reimage the nodes that do not satisfy the job, and wait.
    """
    from ..catalogue import load_catalogue  # noqa: PLC0415
    from ..errors import BackendError  # noqa: PLC0415
    from ..slurm.client import SlurmCli  # noqa: PLC0415
    from ..slurm.hooks import JobContext, prolog_helpers, prolog_reimage  # noqa: PLC0415
    from ..slurm.nodepower import node_power_from_env  # noqa: PLC0415

    s = cli.settings
    job = JobContext.from_env(os.environ)
    if s.slurm_mode == "helpers":
        # The timeout needs the catalogue: read it only when some node is rebooting.
        out = prolog_helpers(
            job, SlurmCli(), _api(cli) if s.token else None, lambda: _job_timeout(cli, timeout)
        )
    else:
        cat = load_catalogue(s.catalogue_dir)
        out = prolog_reimage(
            job,
            SlurmCli(),
            _api(cli),
            node_power_from_env(s.node_command),
            cat,
            timeout=_job_timeout(cli, timeout),
        )
    click.echo(f"cmt slurm prolog-ctld: job {job.job_id}: {out.message}", err=True)
    if not out.ok:
        raise BackendError(f"job {job.job_id}: {out.message}", hint="Slurm requeues the job")


@slurm.command("epilog")
@pass_cli
def epilog(cli: CliContext) -> None:
    """EpilogSlurmctld: with epilog_policy = "default", return the job's nodes to the site default
    image once idle; with "keep" (the default) do nothing."""
    s = cli.settings
    if s.epilog_policy != "default":
        return
    from ..catalogue import load_catalogue  # noqa: PLC0415
    from ..slurm.client import SlurmCli  # noqa: PLC0415
    from ..slurm.hooks import JobContext, epilog_default  # noqa: PLC0415

    job = JobContext.from_env(os.environ)
    acted = epilog_default(job, SlurmCli(), _api(cli), load_catalogue(s.catalogue_dir), s.epilog_policy)
    if acted:
        click.echo(
            f"cmt slurm epilog: job {job.job_id}: {', '.join(acted)} return to the default image", err=True
        )
