"""dnsmasq.conf for the provisioning network: DHCP + TFTP chainloading into iPXE. Pure: config in, text out.

What the rendered file does:

- DHCP (IPv4) on one interface only (``interface=`` + ``bind-interfaces``), no DNS (``port=0``).
- Clients already running iPXE (DHCP option 175 present, or user class ``iPXE``) get the boot server's
  script URL as their boot file; iPXE expands the ``${...}`` settings in it itself:
  ``<server>/boot/ipxe?mac=${net0/mac}&uuid=${uuid}&serial=${serial:uristring}&arch=${buildarch}``.
- Other PXE clients get iPXE over TFTP from Debian's ``ipxe`` package: BIOS (client arch 0)
  ``undionly.kpxe``; UEFI x86-64 (client arch 7 or 9) ``ipxe.efi``. That iPXE asks DHCP again, now
  with option 175, and so gets the script URL: the chain ends there.
- Optional fixed addresses (``dhcp-host=MAC,IP[,name]``).

The script URL goes in the BOOTP ``file`` field, which holds 127 characters, so a longer URL is refused.
Not covered: proxy-DHCP (another DHCP server on the same network), DHCPv6 and arm64 UEFI.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import BadInput
from .ipxe.context import BOOT_QUERY
from .patterns import HOSTNAME as _HOSTNAME
from .patterns import MAC as _MAC

if TYPE_CHECKING:
    from .config import Settings

#: What the BOOTP `file` field can carry (128 bytes including the terminating NUL).
MAX_BOOT_FILE = 127
DEBIAN_IPXE_DIR = Path("/usr/lib/ipxe")

_IFNAME = re.compile(r"[A-Za-z0-9_.:-]{1,15}")
_FILE = re.compile(r"[A-Za-z0-9._+-]{1,64}")
_LEASE = re.compile(r"\d+[smhdw]?|infinite")
# Characters a dnsmasq value may hold without quoting trouble; no quotes, backslash, comma or '#'.
_URL = re.compile(r"https?://[A-Za-z0-9._~:/?\[\]@!&()*+;=%-]+")
_PATH = re.compile(r"/[A-Za-z0-9._/+-]*")


def _fail(what: str, hint: str | None = None) -> BadInput:
    return BadInput(f"dnsmasq config: {what}", hint=hint)


def _ipv4(value: str, name: str) -> ipaddress.IPv4Address:
    try:
        return ipaddress.IPv4Address(value)
    except (ipaddress.AddressValueError, ValueError):
        raise _fail(f"{name}: {value!r} is not an IPv4 address", "e.g. 10.0.0.100") from None


def _path(value: Path | str, name: str) -> str:
    text = str(value)
    if not _PATH.fullmatch(text):
        raise _fail(f"{name}: {text!r} is not an absolute path of plain characters")
    return text


@dataclass(frozen=True)
class StaticHost:
    """A fixed address: ``mac`` (``52:54:00:12:34:56``), ``ip`` (``10.0.0.11``), optional host ``name``."""

    mac: str
    ip: str
    name: str | None = None

    def __post_init__(self) -> None:
        mac = str(self.mac).lower().replace("-", ":")
        if not _MAC.fullmatch(mac):
            raise _fail(f"host {self.mac!r}: not a MAC address", "write it as aa:bb:cc:dd:ee:ff")
        object.__setattr__(self, "mac", mac)
        _ipv4(self.ip, f"host {mac}")
        if self.name is not None and not _HOSTNAME.fullmatch(self.name):
            raise _fail(f"host {mac}: {self.name!r} is not a host name", "lowercase letters, digits, '-'")


@dataclass(frozen=True)
class DnsmasqConfig:
    """Everything the rendered dnsmasq.conf depends on; validated when built (:class:`BadInput`).

    - ``interface``: the provisioning network's interface, e.g. ``eth1``
    - ``dhcp_range``: first and last address handed out, e.g. ``("10.0.0.100", "10.0.0.200")``
    - ``server_url``: the boot server as nodes reach it, e.g. ``http://10.0.0.1:8080``
    - ``netmask``: e.g. ``255.255.255.0`` (default: dnsmasq derives it from the interface)
    - ``lease_time``: e.g. ``12h``
    - ``tftp_root``: where ``bios_file`` and ``efi_file`` are (Debian's ``ipxe`` package: /usr/lib/ipxe)
    - ``router``, ``dns_servers``: DHCP options 3 and 6, when the nodes need them after boot
    - ``hosts``: fixed addresses
    - ``lease_file``, ``pid_file``: dnsmasq's own files (defaults: dnsmasq's)
    - ``authoritative``: answer clients with leases from elsewhere at once (only on a network dnsmasq
      alone serves)
    - ``log_dhcp``: log every DHCP exchange (useful while setting up)
    """

    interface: str
    dhcp_range: tuple[str, str]
    server_url: str
    netmask: str | None = None
    lease_time: str = "12h"
    tftp_root: Path = DEBIAN_IPXE_DIR
    bios_file: str = "undionly.kpxe"
    efi_file: str = "ipxe.efi"
    router: str | None = None
    dns_servers: tuple[str, ...] = ()
    hosts: tuple[StaticHost, ...] = ()
    lease_file: Path | None = None
    pid_file: Path | None = None
    authoritative: bool = False
    log_dhcp: bool = False

    def __post_init__(self) -> None:
        if not _IFNAME.fullmatch(self.interface):
            raise _fail(f"interface: {self.interface!r} is not an interface name", "see `ip link`")
        if len(self.dhcp_range) != 2:
            raise _fail("dhcp_range: give the first and the last address")
        start, end = (_ipv4(a, "dhcp_range") for a in self.dhcp_range)
        if start > end:
            raise _fail(f"dhcp_range: {start} comes after {end}", "give the lower address first")
        if self.netmask is not None:
            try:
                net = ipaddress.IPv4Network(f"{start}/{self.netmask}", strict=False)
            except ValueError:
                raise _fail(f"netmask: {self.netmask!r} is not a netmask", "e.g. 255.255.255.0") from None
            if end not in net:
                raise _fail(f"dhcp_range: {start} and {end} are not in one /{net.prefixlen} network")
        if not _LEASE.fullmatch(self.lease_time):
            raise _fail(f"lease_time: {self.lease_time!r} is not a lease time", "e.g. 12h, 30m, infinite")
        url = self.server_url.rstrip("/")
        if not _URL.fullmatch(url):
            raise _fail(
                f"server_url: {self.server_url!r} is not a plain http(s) URL", "e.g. http://10.0.0.1:8080"
            )
        object.__setattr__(self, "server_url", url)
        if len(self.boot_url) > MAX_BOOT_FILE:
            raise _fail(
                f"the iPXE script URL is {len(self.boot_url)} characters; DHCP's boot file field holds "
                f"{MAX_BOOT_FILE}",
                "use a shorter server_url (an IP address instead of a long host name)",
            )
        _path(self.tftp_root, "tftp_root")
        for name in ("bios_file", "efi_file"):
            if not _FILE.fullmatch(getattr(self, name)):
                raise _fail(f"{name}: {getattr(self, name)!r} is not a plain file name")
        if self.router is not None:
            _ipv4(self.router, "router")
        for dns in self.dns_servers:
            _ipv4(dns, "dns_servers")
        seen_mac: set[str] = set()
        seen_ip: set[str] = set()
        for host in self.hosts:
            if host.mac in seen_mac or host.ip in seen_ip:
                raise _fail(f"host {host.mac} {host.ip}: MAC or address listed twice")
            seen_mac.add(host.mac)
            seen_ip.add(host.ip)
        for name in ("lease_file", "pid_file"):
            value = getattr(self, name)
            if value is not None:
                _path(value, name)

    @property
    def boot_url(self) -> str:
        return f"{self.server_url}/boot/ipxe?{BOOT_QUERY}"

    @classmethod
    def from_settings(
        cls, settings: Settings, *, interface: str, dhcp_range: str, **options: Any
    ) -> DnsmasqConfig:
        """For ``cmt server dnsmasq-config --interface eth1 --dhcp-range START,END[,MASK][,LEASE]``:
        the script URL is the settings' ``public_url``; ``options`` are the other fields.

        :raises BadInput: as the constructor.
        """
        addresses, netmask, lease = parse_dhcp_range(dhcp_range)
        if netmask is not None:
            options.setdefault("netmask", netmask)
        if lease is not None:
            options.setdefault("lease_time", lease)
        return cls(interface=interface, dhcp_range=addresses, server_url=settings.public_url, **options)


def parse_dhcp_range(text: str) -> tuple[tuple[str, str], str | None, str | None]:
    """``START,END[,NETMASK][,LEASE]`` (dnsmasq's own order) → ``((start, end), netmask, lease)``.

    :raises BadInput: not two addresses, or a part that is neither a netmask nor a lease time.
    """
    parts = [p.strip() for p in text.split(",")]
    if len(parts) < 2 or len(parts) > 4:
        raise _fail(
            f"dhcp range {text!r}: want START,END[,NETMASK][,LEASE]", "e.g. 10.0.0.100,10.0.0.200,12h"
        )
    netmask = lease = None
    for part in parts[2:]:
        if _LEASE.fullmatch(part):
            lease = part
        else:
            netmask = part
    return (parts[0], parts[1]), netmask, lease


def render_dnsmasq_conf(cfg: DnsmasqConfig) -> str:
    """The whole dnsmasq.conf for ``cfg`` (see the module docstring for what it does)."""
    start, end = cfg.dhcp_range
    range_parts = [start, end, *([cfg.netmask] if cfg.netmask else []), cfg.lease_time]
    lines = [
        "# dnsmasq for cmt-slurm's provisioning network: DHCP + TFTP chainloading into iPXE.",
        "# Generated by cmt-slurm (`cmt server dnsmasq-config`): regenerate it rather than edit it.",
        "",
        "# No DNS: this dnsmasq only answers DHCP and TFTP, and only on the provisioning interface.",
        "port=0",
        f"interface={cfg.interface}",
        "bind-interfaces",
        "",
        f"dhcp-range={','.join(range_parts)}",
    ]
    if cfg.authoritative:
        lines.append("dhcp-authoritative")
    if cfg.router:
        lines.append(f"dhcp-option=option:router,{cfg.router}")
    if cfg.dns_servers:
        lines.append(f"dhcp-option=option:dns-server,{','.join(cfg.dns_servers)}")
    if cfg.lease_file:
        lines.append(f"dhcp-leasefile={cfg.lease_file}")
    if cfg.pid_file:
        lines.append(f"pid-file={cfg.pid_file}")
    if cfg.log_dhcp:
        lines.append("log-dhcp")
    lines += [
        "",
        "# Who is asking: iPXE sends option 175 and the user class 'iPXE'; firmware PXE sends its",
        "# architecture in option 93 (0 BIOS, 7 and 9 UEFI x86-64).",
        "dhcp-match=set:ipxe,175",
        "dhcp-userclass=set:ipxe,iPXE",
        "dhcp-match=set:efi64,option:client-arch,7",
        "dhcp-match=set:efi64,option:client-arch,9",
        "",
        "# Firmware PXE gets iPXE over TFTP; iPXE gets the boot server's script for this machine.",
        "enable-tftp",
        f"tftp-root={cfg.tftp_root}",
        f"dhcp-boot=tag:!ipxe,tag:!efi64,{cfg.bios_file}",
        f"dhcp-boot=tag:!ipxe,tag:efi64,{cfg.efi_file}",
        # quoted: dnsmasq gives ',', ':', '.' and '#' meanings outside quotes
        f'dhcp-boot=tag:ipxe,"{cfg.boot_url}"',
    ]
    if cfg.hosts:
        lines += ["", "# Fixed addresses."]
        lines += [f"dhcp-host={','.join([h.mac, h.ip, *([h.name] if h.name else [])])}" for h in cfg.hosts]
    return "\n".join(lines) + "\n"


def static_hosts(pairs: Sequence[tuple[str, str] | tuple[str, str, str]]) -> tuple[StaticHost, ...]:
    """Build :class:`StaticHost` entries from ``(mac, ip[, name])`` tuples (e.g. from the node table)."""
    return tuple(StaticHost(*p) for p in pairs)
