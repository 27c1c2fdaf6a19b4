"""``cmt server``: run the boot server under gunicorn; ``cmt server dnsmasq-config``: DHCP/TFTP config."""

from __future__ import annotations

from pathlib import Path

import click

from ..store.engine import safe_url
from .context import CliContext, pass_cli


@click.group("server", invoke_without_command=True)
@click.option("--bind", metavar="HOST:PORT", help="Address to listen on (setting: bind).")
@click.option("--db", "db_url", metavar="URL", help="Database URL (default: SQLite under the data dir).")
@click.option(
    "--catalogue", "catalogue_dir", type=click.Path(path_type=Path), help="Directory of image manifests."
)
@click.option(
    "--data", "data_dir", type=click.Path(path_type=Path), help="Data directory (SQLite, live env)."
)
@click.option("--workers", type=click.IntRange(min=1), help="gunicorn worker processes.")
@click.option("--threads", type=click.IntRange(min=1), help="Threads per worker (SSE clients hold one).")
@click.option("--public-url", metavar="URL", help="URL nodes use to reach this server.")
@click.option("--access-log/--no-access-log", default=True, help="Log every request to stderr.")
@click.pass_context
def server(  # noqa: PLR0917 - one parameter per flag, as click passes them
    ctx: click.Context,
    bind: str | None,
    db_url: str | None,
    catalogue_dir: Path | None,
    data_dir: Path | None,
    workers: int | None,
    threads: int | None,
    public_url: str | None,
    access_log: bool,
) -> None:
    """Run the boot server (iPXE scripts, API, images, dashboard) in the foreground.

    Flags override cmt.toml and CMT_* variables. Stop it with Ctrl-C or SIGTERM.
    """
    cli = ctx.ensure_object(CliContext)
    cli.overrides.update(
        {
            k: v
            for k, v in {
                "bind": bind,
                "db_url": db_url,
                "catalogue_dir": catalogue_dir,
                "data_dir": data_dir,
                "workers": workers,
                "threads": threads,
                "public_url": public_url,
            }.items()
            if v is not None
        }
    )
    if ctx.invoked_subcommand is not None:
        return
    settings = cli.with_overrides()
    click.echo(
        f"cmt server: listening on {settings.bind}, {settings.workers} workers x {settings.threads} threads,"
        f" db {safe_url(settings.effective_db_url)}, catalogue {settings.catalogue_dir}",
        err=True,
    )
    # Late: gunicorn only for this command, not for dnsmasq-config.
    from ..server.wsgi import run  # noqa: PLC0415

    run(settings, access_log=access_log)


@server.command("dnsmasq-config")
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Write to this file instead of stdout.")
@pass_cli
def dnsmasq_config(cli: CliContext, output: Path | None) -> None:
    """Print a dnsmasq.conf: DHCP, TFTP for non-iPXE firmware, and the HTTP script URL for iPXE."""
    from ..dnsmasq import render_dnsmasq_conf  # noqa: PLC0415 - not needed to run the server

    text = render_dnsmasq_conf(cli.with_overrides())
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text)
        click.echo(f"wrote {output}", err=True)
