"""Network up on the boot interface, and the node's hardware facts for registration.

The live env's /init usually ran DHCP already and wrote ``/run/cmt/net.env``; then this only reads it.
Otherwise busybox ``udhcpc`` runs with the live env's hook script (``/etc/udhcpc.script``).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

from ..errors import BackendError, BadInput
from ..runner import CommandRunner

NET_ENV = Path("/run/cmt/net.env")
UDHCPC_SCRIPT = Path("/etc/udhcpc.script")


@dataclass(frozen=True)
class Interface:
    name: str
    mac: str
    wired: bool = True


def list_interfaces(sys_class_net: Path = Path("/sys/class/net")) -> list[Interface]:
    found = []
    for d in sorted(sys_class_net.iterdir()):
        if d.name == "lo" or not (d / "address").is_file():
            continue
        kind = (d / "type").read_text().strip() if (d / "type").is_file() else "1"
        wireless = (d / "wireless").exists()
        if kind != "1":  # ARPHRD_ETHER only
            continue
        found.append(Interface(d.name, (d / "address").read_text().strip().lower(), not wireless))
    return found


def pick_interface(interfaces: list[Interface], name: str | None, mac: str | None) -> Interface:
    """``cmt.iface`` by name, else the NIC with the boot MAC, else the first wired NIC.

    :raises BadInput: the named interface or MAC is not present, or there is no NIC at all.
    """
    if name:
        for iface in interfaces:
            if iface.name == name:
                return iface
        raise BadInput(f"cmt.iface={name}: no such interface", hint=_seen(interfaces))
    if mac:
        for iface in interfaces:
            if iface.mac == mac:
                return iface
        raise BadInput(f"no interface has the boot MAC {mac}", hint=_seen(interfaces))
    wired = [i for i in interfaces if i.wired]
    if not wired:
        raise BadInput("no wired network interface found", hint="is the NIC's driver in the live env?")
    return wired[0]


def _seen(interfaces: list[Interface]) -> str:
    names = ", ".join(f"{i.name} ({i.mac})" for i in interfaces) or "none"
    return f"interfaces present: {names}"


def parse_net_env(text: str) -> dict[str, str]:
    """The ``KEY=VALUE`` lines the udhcpc hook writes (shell quoting allowed)."""
    env: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition("=")
        if sep and key.isidentifier():
            words = shlex.split(value) if value else [""]
            env[key] = " ".join(words)
    return env


@dataclass(frozen=True)
class Lease:
    iface: str
    ip: str
    router: str | None


def network_up(
    runner: CommandRunner, iface: Interface, net_env: Path = NET_ENV, script: Path = UDHCPC_SCRIPT
) -> Lease:
    """The DHCP lease of ``iface``: the one /init got, else a fresh one from udhcpc.

    :raises BackendError: no lease after udhcpc's retries.
    """
    if net_env.is_file():
        env = parse_net_env(net_env.read_text())
        if env.get("CMT_IFACE") == iface.name and env.get("CMT_IP"):
            return Lease(iface.name, env["CMT_IP"], env.get("CMT_ROUTER") or None)
    runner.run(["ip", "link", "set", iface.name, "up"], timeout=30)
    result = runner.run(
        ["udhcpc", "-i", iface.name, "-s", str(script), "-t", "5", "-T", "2", "-n", "-q", "-f"],
        check=False,
        timeout=60,
    )
    if not result.ok:
        raise BackendError(
            f"DHCP on {iface.name} ({iface.mac}) got no lease: {result.last_error_line()}",
            hint="is the DHCP server (dnsmasq) answering on the provisioning network?",
        )
    env = parse_net_env(net_env.read_text()) if net_env.is_file() else {}
    if not env.get("CMT_IP"):
        raise BackendError(f"DHCP on {iface.name}: the hook wrote no address to {net_env}")
    return Lease(iface.name, env["CMT_IP"], env.get("CMT_ROUTER") or None)


def read_dmi(dmi: Path = Path("/sys/class/dmi/id")) -> dict[str, str]:
    out = {}
    for key, fname in (
        ("uuid", "product_uuid"),
        ("serial", "product_serial"),
        ("vendor", "sys_vendor"),
        ("product", "product_name"),
    ):
        try:
            out[key] = (dmi / fname).read_text().strip()
        except OSError:
            continue
    return out


def list_disks(sys_block: Path = Path("/sys/block")) -> list[dict[str, object]]:
    """Whole disks (not loop, ram, partitions, CD-ROMs) with their size in bytes."""
    disks: list[dict[str, object]] = []
    if not sys_block.is_dir():
        return disks
    for d in sorted(sys_block.iterdir()):
        if d.name.startswith(("loop", "ram", "sr", "zram", "dm-", "md")):
            continue
        try:
            sectors = int((d / "size").read_text())
        except (OSError, ValueError):
            continue
        if sectors:
            disks.append({"name": f"/dev/{d.name}", "size": sectors * 512})
    return disks


def default_disk(disks: list[dict[str, object]]) -> str:
    if not disks:
        raise BadInput("no disk found to write the image to", hint="is the disk driver in the live env?")
    return str(disks[0]["name"])
