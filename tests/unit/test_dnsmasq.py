"""render_dnsmasq_conf: the whole file, the example in server/, and what the config refuses.

Regenerate server/dnsmasq.conf.example after an intended change with
``CMT_TEST_UPDATE_GOLDEN=1 .venv/bin/pytest tests/unit/test_dnsmasq.py``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from cmt_slurm.config import Settings
from cmt_slurm.dnsmasq import (
    DnsmasqConfig,
    StaticHost,
    parse_dhcp_range,
    render_dnsmasq_conf,
    static_hosts,
)
from cmt_slurm.errors import BadInput

EXAMPLE_FILE = Path(__file__).resolve().parents[2] / "server" / "dnsmasq.conf.example"
#: What server/dnsmasq.conf.example is rendered from.
EXAMPLE = DnsmasqConfig(
    interface="eth1", dhcp_range=("10.0.0.100", "10.0.0.200"), server_url="http://10.0.0.1:8080"
)


def cfg(**change: Any) -> DnsmasqConfig:
    values: dict[str, Any] = {
        "interface": "eth1",
        "dhcp_range": ("10.0.0.100", "10.0.0.200"),
        "server_url": "http://10.0.0.1:8080",
    }
    return DnsmasqConfig(**(values | change))


def test_example_file_is_what_the_code_renders() -> None:
    text = render_dnsmasq_conf(EXAMPLE)
    if os.environ.get("CMT_TEST_UPDATE_GOLDEN"):
        EXAMPLE_FILE.write_text(text)
    assert EXAMPLE_FILE.read_text() == text


def test_whole_file_with_every_option() -> None:
    text = render_dnsmasq_conf(
        cfg(
            netmask="255.255.255.0",
            lease_time="30m",
            tftp_root=Path("/srv/tftp"),
            router="10.0.0.1",
            dns_servers=("10.0.0.2", "10.0.0.3"),
            hosts=static_hosts(
                [("52:54:00:12:34:56", "10.0.0.11", "node-1"), ("52-54-00-AB-CD-EF", "10.0.0.12")]
            ),
            lease_file=Path("/var/lib/cmt/dnsmasq.leases"),
            pid_file=Path("/run/cmt-dnsmasq.pid"),
            authoritative=True,
            log_dhcp=True,
        )
    )
    body = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert body == [
        "port=0",
        "interface=eth1",
        "bind-interfaces",
        "dhcp-range=10.0.0.100,10.0.0.200,255.255.255.0,30m",
        "dhcp-authoritative",
        "dhcp-option=option:router,10.0.0.1",
        "dhcp-option=option:dns-server,10.0.0.2,10.0.0.3",
        "dhcp-leasefile=/var/lib/cmt/dnsmasq.leases",
        "pid-file=/run/cmt-dnsmasq.pid",
        "log-dhcp",
        "dhcp-match=set:ipxe,175",
        "dhcp-userclass=set:ipxe,iPXE",
        "dhcp-match=set:efi64,option:client-arch,7",
        "dhcp-match=set:efi64,option:client-arch,9",
        "enable-tftp",
        "tftp-root=/srv/tftp",
        "dhcp-boot=tag:!ipxe,tag:!efi64,undionly.kpxe",
        "dhcp-boot=tag:!ipxe,tag:efi64,ipxe.efi",
        'dhcp-boot=tag:ipxe,"http://10.0.0.1:8080/boot/ipxe?mac=${net0/mac}&uuid=${uuid}'
        '&serial=${serial:uristring}&arch=${buildarch}"',
        "dhcp-host=52:54:00:12:34:56,10.0.0.11,node-1",
        "dhcp-host=52:54:00:ab:cd:ef,10.0.0.12",
    ]


def test_defaults_serve_debian_ipxe_files() -> None:
    text = render_dnsmasq_conf(cfg())
    assert "tftp-root=/usr/lib/ipxe\n" in text
    assert "dhcp-range=10.0.0.100,10.0.0.200,12h\n" in text
    assert "dhcp-authoritative" not in text
    assert "dhcp-host" not in text


def test_server_url_trailing_slash() -> None:
    assert cfg(server_url="http://10.0.0.1:8080/").boot_url.startswith("http://10.0.0.1:8080/boot/ipxe?")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"interface": "eth1 eth2"}, "is not an interface name"),
        ({"interface": "a-very-long-interface"}, "is not an interface name"),
        ({"dhcp_range": ("10.0.0.200", "10.0.0.100")}, "comes after"),
        ({"dhcp_range": ("10.0.0.1",)}, "first and the last"),
        ({"dhcp_range": ("10.0.0.1", "fe80::1")}, "is not an IPv4 address"),
        ({"dhcp_range": ("10.0.0.100", "10.0.1.100"), "netmask": "255.255.255.0"}, "not in one /24"),
        ({"netmask": "255.0.255.0"}, "is not a netmask"),
        ({"lease_time": "12 hours"}, "is not a lease time"),
        ({"server_url": "http://10.0.0.1:8080/a,b"}, "is not a plain http"),
        ({"server_url": 'http://10.0.0.1/"x'}, "is not a plain http"),
        ({"server_url": "http://10.0.0.1/#x"}, "is not a plain http"),
        ({"server_url": "http://boot.provisioning.rack07.datacentre-east.example.org:8080"}, "holds 127"),
        ({"tftp_root": Path("relative/dir")}, "absolute path"),
        ({"bios_file": "../x"}, "is not a plain file name"),
        ({"router": "gateway"}, "router"),
        ({"dns_servers": ("1.1.1",)}, "dns_servers"),
        ({"lease_file": Path("/tmp/a b")}, "lease_file"),
        (
            {
                "hosts": (
                    StaticHost("52:54:00:12:34:56", "10.0.0.11"),
                    StaticHost("52:54:00:12:34:57", "10.0.0.11"),
                )
            },
            "listed twice",
        ),
    ],
)
def test_refused(change: dict[str, Any], message: str) -> None:
    with pytest.raises(BadInput, match=message) as err:
        cfg(**change)
    assert err.value.message.startswith("dnsmasq config: ")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("52:54:00:12:34", "10.0.0.1"), "not a MAC address"),
        (("52:54:00:12:34:56", "10.0.0.300"), "is not an IPv4 address"),
        (("52:54:00:12:34:56", "10.0.0.3", "Node_1"), "is not a host name"),
    ],
)
def test_static_host_refused(args: tuple[str, ...], message: str) -> None:
    with pytest.raises(BadInput, match=message):
        StaticHost(*args)


def test_parse_dhcp_range() -> None:
    assert parse_dhcp_range("10.0.0.100,10.0.0.200") == (("10.0.0.100", "10.0.0.200"), None, None)
    assert parse_dhcp_range("10.0.0.100, 10.0.0.200,255.255.255.0,12h") == (
        ("10.0.0.100", "10.0.0.200"),
        "255.255.255.0",
        "12h",
    )
    assert parse_dhcp_range("10.0.0.100,10.0.0.200,infinite")[2] == "infinite"
    with pytest.raises(BadInput, match="want START,END"):
        parse_dhcp_range("10.0.0.100")


def test_from_settings_uses_public_url_and_range_text() -> None:
    settings = Settings(public_url="http://10.0.0.5:8080")
    got = DnsmasqConfig.from_settings(
        settings, interface="eth1", dhcp_range="10.0.0.100,10.0.0.200,255.255.255.0,2h"
    )
    assert got.server_url == "http://10.0.0.5:8080"
    assert (got.dhcp_range, got.netmask, got.lease_time) == (
        ("10.0.0.100", "10.0.0.200"),
        "255.255.255.0",
        "2h",
    )
    assert DnsmasqConfig.from_settings(
        settings, interface="eth1", dhcp_range="10.0.0.1,10.0.0.9", log_dhcp=True
    ).log_dhcp
