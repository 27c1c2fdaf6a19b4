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
        f"cmt server: starting on {settings.bind}, {settings.workers} workers x {settings.threads} threads,"
        f" db {safe_url(settings.effective_db_url)}, catalogue {settings.catalogue_dir}",
        err=True,
    )
    # Late: gunicorn only for this command, not for dnsmasq-config.
    from ..server.wsgi import run  # noqa: PLC0415

    run(settings, access_log=access_log)


@server.command("dnsmasq-config")
@click.option("--interface", required=True, help="Provisioning interface dnsmasq serves (only that one).")
@click.option(
    "--dhcp-range", required=True, metavar="START,END[,MASK][,LEASE]", help="e.g. 10.0.0.100,10.0.0.200,12h"
)
@click.option("--router", metavar="IP", help="Default gateway handed out (none: no route).")
@click.option("--dns", "dns_servers", multiple=True, metavar="IP", help="DNS server handed out (repeatable).")
@click.option(
    "--host", "hosts", multiple=True, metavar="MAC,IP[,NAME]", help="Fixed address for a MAC (repeatable)."
)
@click.option("--tftp-root", type=click.Path(path_type=Path), help="Where undionly.kpxe and ipxe.efi are.")
@click.option("--lease-file", type=click.Path(path_type=Path), help="dnsmasq lease file.")
@click.option("--pid-file", type=click.Path(path_type=Path), help="dnsmasq pid file.")
@click.option("--authoritative", is_flag=True, help="Answer as the only DHCP server on the network.")
@click.option("--log-dhcp", is_flag=True, help="Log every DHCP transaction.")
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Write here instead of stdout.")
@pass_cli
def dnsmasq_config(  # noqa: PLR0917 - one parameter per flag, as click passes them
    cli: CliContext,
    interface: str,
    dhcp_range: str,
    router: str | None,
    dns_servers: tuple[str, ...],
    hosts: tuple[str, ...],
    tftp_root: Path | None,
    lease_file: Path | None,
    pid_file: Path | None,
    authoritative: bool,
    log_dhcp: bool,
    output: Path | None,
) -> None:
    """Print a dnsmasq.conf: DHCP, TFTP iPXE for firmware PXE, and this server's script URL for iPXE."""
    # Late: not needed to run the server.
    from ..dnsmasq import DnsmasqConfig, render_dnsmasq_conf, static_hosts  # noqa: PLC0415

    options: dict[str, object] = {
        "router": router,
        "dns_servers": dns_servers,
        "authoritative": authoritative,
        "log_dhcp": log_dhcp,
        "hosts": static_hosts([_host(h) for h in hosts]),
    }
    for key, value in (("tftp_root", tftp_root), ("lease_file", lease_file), ("pid_file", pid_file)):
        if value is not None:
            options[key] = value
    cfg = DnsmasqConfig.from_settings(cli.settings, interface=interface, dhcp_range=dhcp_range, **options)
    text = render_dnsmasq_conf(cfg)
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text)
        click.echo(f"wrote {output}", err=True)


def _host(text: str) -> tuple[str, str] | tuple[str, str, str]:
    parts = [p.strip() for p in text.split(",")]
    if len(parts) == 2:
        return parts[0], parts[1]
    if len(parts) == 3:
        return parts[0], parts[1], parts[2]
    raise click.BadParameter(f"{text!r} is not MAC,IP[,NAME]", param_hint="--host")
