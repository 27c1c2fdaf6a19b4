"""The lab's daemons, as pure argv/config builders: dnsmasq (DHCP), lldpd (the switch), the boot server.

Each runs inside the lab namespace; ``lab.py`` starts them through ``procs.spawn`` and records their PIDs.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .netns import LabNetwork

#: LLDP system name the lab's switch announces; the lab's naming rule is keyed on it.
SWITCH_NAME = "cmt-lab-sw1"
SERVER_PORT = 8080


@dataclass(frozen=True)
class SwitchPort:
    tap: str
    port_id: str
    description: str


def port_id(index: int) -> str:
    """Cisco-style port names, so the LLDP frames look like a real access switch's: ``Gi1/0/17``."""
    return f"Gi1/0/{index}"


def server_url(net: LabNetwork) -> str:
    return f"http://{net.host_ip}:{SERVER_PORT}"


def dnsmasq_conf(net: LabNetwork, leasefile: Path, macs: Sequence[tuple[str, str]] = ()) -> str:
    """DHCP on the bridge; iPXE clients (option 175) get the boot server's script URL straight away.

    ``macs``: (mac, ip) pairs pinned so a VM keeps its address across reimages (the Slurm controller
    reaches slurmd by address). No DNS (``port=0``), no TFTP: QEMU's NIC ROM is iPXE already.
    """
    low, high = net.dhcp_range()
    url = f"{server_url(net)}/boot/ipxe?mac=${{net0/mac}}&uuid=${{uuid}}&arch=${{buildarch}}"
    lines = [
        "# cmt lab: generated, do not edit (cmt_slurm/lab/services.py)",
        f"interface={net.bridge}",
        "bind-interfaces",
        "except-interface=lo",
        "port=0",
        "no-resolv",
        "no-hosts",
        f"dhcp-range={low},{high},{net.net.netmask},12h",
        f"dhcp-leasefile={leasefile}",
        "dhcp-authoritative",
        "dhcp-rapid-commit",
        "dhcp-match=set:ipxe,175",
        f"dhcp-boot=tag:ipxe,{url}",
        # No router and no DNS server: the lab network leads nowhere.
        "dhcp-option=option:router",
        "dhcp-option=option:dns-server",
        "log-dhcp",
    ]
    lines += [f"dhcp-host={mac},{ip}" for mac, ip in macs]
    return "\n".join(lines) + "\n"


def dnsmasq_argv(conf: Path, pidfile: Path) -> list[str]:
    return [
        "dnsmasq", "--keep-in-foreground", "--log-facility=-", f"--conf-file={conf}",
        f"--pid-file={pidfile}", "--user=root", "--group=root",
    ]  # fmt: skip


def lldpd_argv(socket: Path, pidfile: Path, taps: Sequence[str]) -> list[str]:
    # -d: foreground; -I: only the VMs' tap ports (never the bridge); -u: a private control socket.
    return ["lldpd", "-d", "-u", str(socket), "-p", str(pidfile), "-I", ",".join(taps)]


def lldpcli_commands(ports: Sequence[SwitchPort], tx_interval: int = 5) -> list[list[str]]:
    """The switch's identity and a named port per VM. A short tx interval: the agent waits for a frame."""
    cmds = [
        ["configure", "system", "hostname", SWITCH_NAME],
        ["configure", "system", "description", "cmt-slurm lab switch (lldpd)"],
        ["configure", "lldp", "tx-interval", str(tx_interval)],
    ]
    for p in ports:
        cmds.append(
            [
                "configure",
                "ports",
                p.tap,
                "lldp",
                "portidsubtype",
                "local",
                p.port_id,
                "description",
                p.description,
            ]
        )
    return cmds


def server_toml(
    net: LabNetwork,
    data_dir: Path,
    catalogue_dir: Path,
    live_dir: Path,
    *,
    workers: int = 1,
    threads: int = 16,
) -> str:
    """The lab server's cmt.toml: bound on the bridge, nodes on the lab switch named ``node<port>``."""
    return "\n".join(
        [
            "# cmt lab: generated (cmt_slurm/lab/services.py)",
            f'data_dir = "{data_dir}"',
            f'catalogue_dir = "{catalogue_dir}"',
            f'live_dir = "{live_dir}"',
            f'bind = "{net.host_ip}:{SERVER_PORT}"',
            f'public_url = "{server_url(net)}"',
            f'server_url = "{server_url(net)}"',
            f"workers = {workers}",
            f"threads = {threads}",
            'unknown_mac = "discover"',
            "max_concurrent_reimages = 4",
            'default_name_template = "node{port_index}"',
            "",
            "[[naming]]",
            f'switch = "{SWITCH_NAME}"',
            'template = "node{port_index}"',
            "",
        ]
    )


def cmt_argv(*args: str) -> list[str]:
    """``cmt ARGS`` with this interpreter (works from a venv without activating it)."""
    return [sys.executable, "-m", "cmt_slurm", *args]


def module_argv(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


def server_argv(config: Path) -> list[str]:
    return cmt_argv("--config", str(config), "server")


def server_available() -> bool:
    """The boot server (helper H6's ``cmt server``) is importable."""
    return importlib.util.find_spec("cmt_slurm.server.wsgi") is not None
