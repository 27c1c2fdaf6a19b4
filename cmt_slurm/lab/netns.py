"""The lab's private network: one namespace, one bridge (the provisioning network), one tap per VM.

Nothing here touches the host's own interfaces: every link is created inside ``cmt-lab-<id>``, so
DHCP, LLDP and the boot server never reach a real network. Deleting the namespace deletes its links.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import BackendError
from ..runner import CommandRunner

NETNS_DIR = Path("/run/netns")


@dataclass(frozen=True)
class LabNetwork:
    netns: str
    bridge: str = "br0"
    #: The provisioning subnet; only ever exists inside ``netns``.
    subnet: str = "10.77.0.0/24"

    @property
    def net(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(self.subnet)

    @property
    def host_ip(self) -> str:
        """The bridge's address: boot server, dnsmasq and the Slurm controller live here."""
        return str(self.net.network_address + 1)

    @property
    def prefix(self) -> int:
        return self.net.prefixlen

    def dhcp_range(self) -> tuple[str, str]:
        base = self.net.network_address
        return str(base + 100), str(base + 199)

    def exec_argv(self, argv: Sequence[str]) -> list[str]:
        """``argv`` run inside the namespace (``ip netns exec`` execs it: the PID is the command's)."""
        return ["ip", "netns", "exec", self.netns, *argv]


def netns_exists(name: str) -> bool:
    return (NETNS_DIR / name).exists()


def create_network(runner: CommandRunner, net: LabNetwork) -> None:
    """Namespace, loopback up, bridge with its address. Idempotent: an existing piece is kept."""
    if not netns_exists(net.netns):
        runner.run(["ip", "netns", "add", net.netns], timeout=30)
    ns = net.exec_argv
    runner.run(ns(["ip", "link", "set", "lo", "up"]), timeout=30)
    if not runner.run(ns(["ip", "link", "show", net.bridge]), check=False, timeout=30).ok:
        # No STP and no forwarding delay: VMs must get DHCP answers the moment iPXE asks.
        runner.run(
            ns(["ip", "link", "add", net.bridge, "type", "bridge", "stp_state", "0", "forward_delay", "0"]),
            timeout=30,
        )
    addr = f"{net.host_ip}/{net.prefix}"
    shown = runner.run(ns(["ip", "-4", "-o", "addr", "show", "dev", net.bridge]), timeout=30).stdout
    if addr not in shown:
        runner.run(ns(["ip", "addr", "add", addr, "dev", net.bridge]), timeout=30)
    runner.run(ns(["ip", "link", "set", net.bridge, "up"]), timeout=30)


def add_tap(runner: CommandRunner, net: LabNetwork, tap: str) -> None:
    """A persistent tap on the bridge; QEMU (started inside the namespace) attaches to it by name."""
    ns = net.exec_argv
    if not runner.run(ns(["ip", "link", "show", tap]), check=False, timeout=30).ok:
        runner.run(ns(["ip", "tuntap", "add", "dev", tap, "mode", "tap"]), timeout=30)
    runner.run(ns(["ip", "link", "set", tap, "master", net.bridge]), timeout=30)
    runner.run(ns(["ip", "link", "set", tap, "up"]), timeout=30)


def delete_network(runner: CommandRunner, net: LabNetwork, taps: Sequence[str]) -> list[str]:
    """Taps, bridge, namespace; returns what was removed. Missing pieces are not an error."""
    removed: list[str] = []
    if not netns_exists(net.netns):
        return removed
    for link in [*taps, net.bridge]:
        if runner.run(net.exec_argv(["ip", "link", "del", link]), check=False, timeout=30).ok:
            removed.append(link)
    result = runner.run(["ip", "netns", "del", net.netns], check=False, timeout=30)
    if not result.ok and netns_exists(net.netns):
        raise BackendError(
            f"could not delete network namespace {net.netns}: {result.last_error_line()}",
            hint=f"a process may still hold it: ip netns pids {net.netns}",
        )
    removed.append(f"netns {net.netns}")
    return removed


def netns_pids(runner: CommandRunner, name: str) -> list[int]:
    if not netns_exists(name):
        return []
    out = runner.run(["ip", "netns", "pids", name], check=False, timeout=30).stdout
    return [int(p) for p in out.split() if p.isdigit()]


def free_loopback_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def loopback_port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True
