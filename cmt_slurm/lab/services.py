"""The lab's daemons, as pure argv/config builders: dnsmasq (DHCP), lldpd (the switch), the boot server.

Each runs inside the lab namespace; ``lab.py`` starts them through ``procs.spawn`` and records their PIDs.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..dnsmasq import DnsmasqConfig, render_dnsmasq_conf, static_hosts
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


def dnsmasq_conf(
    net: LabNetwork, leasefile: Path, pidfile: Path, macs: Sequence[tuple[str, str]] = ()
) -> str:
    """The provisioning network's dnsmasq.conf, rendered by ``cmt_slurm.dnsmasq`` as for a real site.

    ``macs``: (mac, ip) pairs pinned so a VM keeps its address across reimages (the Slurm controller
    reaches slurmd by address). QEMU's NIC ROM is iPXE already, so nodes take the script URL at once.
    """
    low, high = net.dhcp_range()
    cfg = DnsmasqConfig(
        interface=net.bridge,
        dhcp_range=(low, high),
        server_url=server_url(net),
        netmask=str(net.net.netmask),
        hosts=static_hosts(list(macs)),
        lease_file=leasefile,
        pid_file=pidfile,
        authoritative=True,  # the lab's bridge has no other DHCP server
        log_dhcp=True,
    )
    return render_dnsmasq_conf(cfg)


def dnsmasq_argv(conf: Path) -> list[str]:
    # root: the lease file lives in the lab's work directory, not in dnsmasq's own.
    return [
        "dnsmasq",
        "--keep-in-foreground",
        "--log-facility=-",
        f"--conf-file={conf}",
        "--user=root",
        "--group=root",
    ]


def lldpd_argv(socket: Path, pidfile: Path, taps: Sequence[str]) -> list[str]:
    # -d: foreground; -I: only the VMs' tap ports (never the bridge); -u: a private control socket.
    # -L /bin/true: lldpd starts paused and normally runs its own `lldpcli ... resume` at once, which
    # raced our configuration (seen: frames carrying the host's name, and once no frame at all); with a
    # no-op lldpcli it stays silent until lldpcli_commands' final `resume`.
    return ["lldpd", "-d", "-u", str(socket), "-p", str(pidfile), "-L", "/bin/true", "-I", ",".join(taps)]


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
    cmds.append(["resume"])  # only now does the "switch" start sending, with its identity set
    return cmds


def server_toml(
    net: LabNetwork,
    data_dir: Path,
    catalogue_dir: Path,
    live_dir: Path,
    *,
    workers: int = 1,
    threads: int = 16,
    extra: Mapping[str, str | int | float] | None = None,
) -> str:
    """The lab server's cmt.toml: bound on the bridge, nodes on the lab switch named ``node<port>``.

    ``extra``: more top-level settings from the parts built on the lab (the demo's ``site_files``).
    """
    more = [f"{k} = {json.dumps(v)}" for k, v in sorted((extra or {}).items())]
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
            *more,
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
