"""``cmt node``: the nodes the boot server knows, straight from the database (head-node admin path)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ..errors import BackendError
from ..provisioner import Provisioner
from ..slurm.client import SlurmCli, SlurmClient
from ..slurm.reimage import reimage_node
from ..store.deployments import Deployment
from ..store.nodes import Node
from .admin_db import actor, db_option, json_option, open_provisioner, when
from .context import CliContext, emit, pass_cli, table


@click.group("node")
def node() -> None:
    """Nodes: list, show, set-target, reimage, clear, forget."""


def _row(n: Node) -> dict[str, Any]:
    return {
        "name": n.name,
        "state": str(n.state),
        "image": n.current_image,
        "target": n.target_image,
        "macs": ",".join(n.macs),
        "switch_port": f"{n.lldp_switch}:{n.lldp_port}" if n.lldp_switch else None,
        "last_seen": when(n.last_seen) if n.last_seen else None,
    }


@node.command("list")
@db_option
@json_option
@pass_cli
def list_(cli: CliContext, db_url: str | None, as_json: bool) -> None:
    """Every node with its state, current and target image."""
    nodes = open_provisioner(cli, db_url).list_nodes()
    emit(
        [n.as_dict() for n in nodes],
        as_json,
        lambda _d: table([_row(n) for n in nodes], ["name", "state", "image", "target", "macs", "switch_port",
                                                     "last_seen"]),
    )  # fmt: skip


def _show_human(n: Node, deps: list[Deployment]) -> None:
    rows = [
        ("name", n.name), ("state", str(n.state)), ("arch", n.arch), ("current image", n.current_image),
        ("target image", n.target_image), ("reason", n.reason), ("macs", ", ".join(n.macs)),
        ("switch", n.lldp_switch), ("port", n.lldp_port), ("port index", n.port_index),
        ("dmi serial", n.dmi_serial), ("dmi uuid", n.dmi_uuid), ("boot time", when(n.boot_time)),
        ("last seen", when(n.last_seen)), ("created", when(n.created)),
    ]  # fmt: skip
    for key, value in rows:
        click.echo(f"{key + ':':15} {'-' if value in (None, '') else value}")
    if n.disks:
        click.echo("disks:          " + ", ".join(str(d.get("name", d)) for d in n.disks))
    click.echo("")
    table(
        [
            {
                "deployment": d.id,
                "image": d.image,
                "stage": str(d.stage),
                "outcome": d.outcome,
                "started": when(d.started),
                "ended": when(d.ended) if d.ended else None,
                "message": d.message,
            }
            for d in deps
        ],
        ["deployment", "image", "stage", "outcome", "started", "ended", "message"],
    )


@node.command("show")
@click.argument("name")
@db_option
@json_option
@pass_cli
def show(cli: CliContext, name: str, db_url: str | None, as_json: bool) -> None:
    """One node in full, with its recent deployments (newest first)."""
    prov = open_provisioner(cli, db_url)
    n = prov.get_node(name)
    deps = prov.node_deployments(name)
    data = {"node": n.as_dict(), "deployments": [_public(d) for d in deps]}
    emit(data, as_json, lambda _d: _show_human(n, deps))


def _public(d: Deployment) -> dict[str, Any]:
    data = d.as_dict()
    data.pop("token", None)  # the admin never needs the node's one-time secret
    return data


@node.command("set-target")
@click.argument("name")
@click.argument("image")
@click.option(
    "--catalogue", type=click.Path(path_type=Path), help="Manifest directory (default: catalogue_dir)."
)
@db_option
@json_option
@pass_cli
def set_target(
    cli: CliContext, name: str, image: str, *, catalogue: Path | None, db_url: str | None, as_json: bool
) -> None:
    """Reimage NAME with IMAGE at its next network boot (then reboot it, e.g. scontrol reboot NAME)."""
    prov: Provisioner = open_provisioner(cli, db_url, catalogue=True, catalogue_dir=catalogue)
    dep = prov.set_target(name, image, actor())
    emit(
        _public(dep),
        as_json,
        lambda _d: click.echo(
            f"{name}: reimage to {dep.image} requested (deployment {dep.id}, stage {dep.stage})"
        ),
    )


def slurm_client() -> SlurmClient:
    """The Slurm adapter ``reimage``/``clear --resume`` use (tests replace this)."""
    return SlurmCli()


class _ProvisionerTargets:
    """``reimage_node``'s server port, over the local provisioner (the head-node path: no HTTP)."""

    def __init__(self, prov: Any, who: str) -> None:
        self.prov, self.who = prov, who
        self.deployment: Any = None

    def set_target(self, name: str, image: str) -> dict[str, Any]:
        self.deployment = self.prov.set_target(name, image, self.who)
        return dict(_public(self.deployment))


@node.command("reimage")
@click.argument("name")
@click.argument("image")
@click.option(
    "--when",
    "when_",
    type=click.Choice(["idle", "now"]),
    default="idle",
    show_default=True,
    help="idle: let running jobs finish first; now: requeue the node's jobs and reboot at once.",
)
@click.option("--reboot/--no-reboot", default=True, show_default=True, help="Ask Slurm to reboot the node.")
@click.option(
    "--catalogue", type=click.Path(path_type=Path), help="Manifest directory (default: catalogue_dir)."
)
@db_option
@json_option
@pass_cli
def reimage(
    cli: CliContext, name: str, image: str, *, when_: str, reboot: bool, catalogue: Path | None,
    db_url: str | None, as_json: bool,
) -> None:  # fmt: skip
    """Set the target, then `scontrol reboot ASAP nextstate=resume NAME`: the node reimages once idle.

    Slurm drains the node until the reboot (no new jobs), reboots it when its jobs end (or at once with
    --when now, after requeueing them), and resumes it when it registers again from the new image.
    """
    prov = open_provisioner(cli, db_url, catalogue=True, catalogue_dir=catalogue)
    if not reboot:
        data = dict(_public(prov.set_target(name, image, actor())))
    else:
        targets = _ProvisionerTargets(prov, actor())
        try:
            data = reimage_node(targets, slurm_client(), name, image, when_)
        except BackendError as exc:
            if targets.deployment is None:
                raise
            dep = targets.deployment
            raise BackendError(
                f"{name}: target set to {dep.image} (deployment {dep.id}), but Slurm refused the reboot: "
                f"{exc.message}",
                hint=f"fix Slurm, then: scontrol reboot ASAP nextstate=resume {name}",
                details=exc.details,
            ) from exc
    how = (
        ("; Slurm reboots it " + ("when idle" if when_ == "idle" else "now"))
        if reboot
        else "; reboot it to start"
    )
    emit(
        {**data, "reboot_requested": reboot, "when": when_},
        as_json,
        lambda d: click.echo(f"{name}: reimage to {d.get('image', image)} (deployment {d.get('id')})" + how),
    )


@node.command("clear")
@click.argument("name")
@click.option("--resume", is_flag=True, help="Also resume the node in Slurm (undo the drain).")
@db_option
@json_option
@pass_cli
def clear(cli: CliContext, name: str, resume: bool, db_url: str | None, as_json: bool) -> None:
    """Clear a failed node (after fixing the cause): back to ready, or discovered if its disk is gone."""
    n = open_provisioner(cli, db_url).clear_failed(name, actor())
    if resume:
        slurm_client().resume(name)
    emit(n.as_dict(), as_json, lambda _d: click.echo(f"{name}: {n.state}"))


@node.command("forget")
@click.argument("name")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@db_option
@pass_cli
def forget(cli: CliContext, name: str, yes: bool, db_url: str | None) -> None:
    """Remove NAME, its MACs and deployments (events stay); its MACs are unknown again afterwards."""
    prov = open_provisioner(cli, db_url)
    n = prov.get_node(name)
    if not yes:
        click.confirm(f"forget node {name} ({n.state}, MACs {', '.join(n.macs) or '-'})?", abort=True)
    prov.forget(name, actor())
    click.echo(f"{name}: forgotten")
