"""``cmt lab up|down|status|console``: the virtual lab (QEMU nodes on a private bridge in a namespace)."""

from __future__ import annotations

import os
import select
import socket
import sys
import termios
import tty
from pathlib import Path
from typing import Any

import click

from .context import CliContext, emit, pass_cli

DEFAULT_WORKDIR = Path(".lab")
ESCAPE = b"\x1d"  # Ctrl-]


def _workdir_option(f: Any) -> Any:
    return click.option(
        "--workdir",
        type=click.Path(path_type=Path, file_okay=False),
        default=DEFAULT_WORKDIR,
        show_default=True,
        envvar="CMT_LAB_WORKDIR",
        help="Directory holding the lab's state, disks and logs (one lab per directory).",
    )(f)


@click.group("lab")
def lab() -> None:
    """The virtual lab: namespace + bridge, dnsmasq, lldpd as the switch, the boot server, QEMU nodes."""


@lab.command("up")
@click.option(
    "--nodes", type=click.IntRange(1, 99), default=3, show_default=True, help="Number of QEMU nodes."
)
@_workdir_option
@click.option(
    "--image",
    "images",
    multiple=True,
    metavar="RECIPE",
    help="Build (or reuse) this image and put it in the lab's catalogue; repeatable (default: every recipe).",
)
@click.option("--no-images", is_flag=True, help="Start with an empty catalogue (no image builds).")
@click.option("--no-vms", is_flag=True, help="Network, daemons and server only; start no VM.")
@click.option("--memory", "memory_mb", type=click.IntRange(512, 16384), default=1536, show_default=True,
              help="RAM per VM in MiB (the reimager keeps the image in RAM when it fits).")  # fmt: skip
@pass_cli
def up(  # noqa: PLR0917 - one parameter per flag, as click passes them
    cli: CliContext,
    nodes: int,
    workdir: Path,
    images: tuple[str, ...],
    no_images: bool,
    no_vms: bool,
    memory_mb: int,
) -> None:
    """Bring the lab up (safe to repeat: starts only what is not running)."""
    from ..lab import images as lab_images  # noqa: PLC0415 - image builds are heavy imports
    from ..lab.lab import Lab  # noqa: PLC0415

    lab_ = Lab(workdir, memory_mb=memory_mb)
    live = lab_images.ensure_live_env()
    click.echo(f"live env: {live.directory} (kernel {live.kernel_release})", err=True)
    if not no_images:
        for name in images or tuple(lab_images.image_recipes()):
            img = lab_images.ensure_image(name, lab_.catalogue_dir)
            click.echo(f"image {img.name}: {img.size / 1e6:.1f} MB qcow2, glibc {img.glibc}", err=True)
    lab_.up(nodes, live_dir=live.directory, start_vms=not no_vms, log=lambda m: click.echo(m, err=True))
    click.echo(
        f"lab {lab_.id} is up: dashboard {lab_.host_url}/  (stop with: cmt lab down --workdir {workdir})"
    )


@lab.command("down")
@_workdir_option
def down(workdir: Path) -> None:
    """Stop every lab process (by PID) and remove taps, bridge, namespace and runtime files."""
    from ..lab.lab import Lab  # noqa: PLC0415

    removed = Lab(workdir).down(log=lambda m: click.echo(m, err=True))
    click.echo(f"lab down ({len(removed)} pieces removed)" if removed else "lab was not up")


@lab.command("status")
@_workdir_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def status(workdir: Path, as_json: bool) -> None:
    """Show the lab's network, processes and VMs."""
    from ..lab.lab import Lab  # noqa: PLC0415

    emit(Lab(workdir).status(), as_json, _show_status)


def _show_status(st: dict[str, Any]) -> None:
    click.echo(f"lab {st['id']} ({st['workdir']}): {'up' if st['up'] else 'down'}")
    if not st["up"]:
        return
    click.echo(f"  network   {st['netns']}: {st['bridge']}, accel {st['accel']}")
    click.echo(f"  server    {st['server_url']} (host: {st['host_url'] or '-'})")
    for name, p in st["processes"].items():
        click.echo(f"  {name:<9} pid {p['pid']:<7} {'running' if p['running'] else 'DEAD'}  {p['log']}")
    for v in st["vms"]:
        click.echo(f"  {v['name']:<9} {v['mac']} {v['tap']} on port {v['port_id']}  {v['console_log']}")


@lab.command("console")
@click.argument("node")
@_workdir_option
@click.option("--log", "show_log", is_flag=True, help="Print the console log so far instead of attaching.")
def console(node: str, workdir: Path, show_log: bool) -> None:
    """Attach to NODE's serial console (vm3, 3, its MAC, or node3); Ctrl-] detaches."""
    from ..lab.lab import Lab  # noqa: PLC0415

    vm = Lab(workdir).find_vm(node)
    if show_log:
        click.echo(vm.spec.console_log.read_text(errors="replace") if vm.spec.console_log.exists() else "")
        return
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(str(vm.spec.console_socket))
        click.echo(f"connected to {vm.name}'s console; Ctrl-] detaches", err=True)
        _relay(sock)


def _relay(sock: socket.socket) -> None:
    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd) if os.isatty(fd) else None
    try:
        if saved is not None:
            tty.setraw(fd)
        while True:
            ready, _, _ = select.select([sock, fd], [], [])
            if sock in ready:
                data = sock.recv(4096)
                if not data:
                    return
                os.write(sys.stdout.fileno(), data)
            if fd in ready:
                data = os.read(fd, 1024)
                if not data or ESCAPE in data:
                    return
                sock.sendall(data)
    finally:
        if saved is not None:
            termios.tcsetattr(fd, termios.TCSADRAIN, saved)
