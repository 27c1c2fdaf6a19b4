"""Frames laid out like what common data-centre switches send to a server port, built byte by byte.

Written from the TLV layouts in IEEE 802.1AB and the fields these switches are known to fill (default
configurations); addresses, names and versions are made up. Each TLV header is two bytes:
7-bit type << 9 | 9-bit length.
"""

from __future__ import annotations

import pytest

from cmt_slurm.agent.lldp import parse_lldp
from cmt_slurm.naming import node_name


def frame(*parts: str) -> bytes:
    """Join hex parts (spaces and comments already removed by the caller) into one frame."""
    return bytes.fromhex("".join(parts))


def text(kind: int, value: str) -> str:
    """A text TLV as hex: header computed here so long strings need no hand counting."""
    raw = value.encode()
    return f"{kind << 9 | len(raw):04x}" + raw.hex()


# Cisco Catalyst 9300, IOS-XE, access port Gi1/0/17 with `description node-17`:
# chassis id = base MAC (subtype 4), port id = short interface name (subtype 5), TTL 120,
# port description = the configured description, system name = hostname.domain,
# capabilities (bridge, router; bridge enabled), IPv4 management address with ifIndex, then IEEE 802.1
# port VLAN id and IEEE 802.3 MAC/PHY status, End.
CISCO_IOS = frame(
    "0180c200000e70ea1a3b4c9188cc",  # dst, src = the port's own MAC, EtherType LLDP
    "02070470ea1a3b4c80",  # Chassis ID: length 7, subtype 4 (MAC)
    "040905" + b"Gi1/0/17".hex(),  # Port ID: length 9, subtype 5 (interface name)
    "06020078",  # TTL: length 2, 120 s
    text(4, "node-17"),  # Port Description
    text(5, "sw-r07.example.org"),  # System Name
    text(6, "Cisco IOS Software [Cupertino], Catalyst L3 Switch Software (CAT9K_IOSXE), Version 17.9.4a"),
    "0e0400140004",  # System Capabilities: bridge+router available, bridge enabled
    "100c05010a000007020000000100",  # Mgmt Address: 10.0.0.7, ifIndex 1, no OID
    "fe060080c2010064",  # IEEE 802.1 Port VLAN ID: 100
    "fe0900120f01036c03001e",  # IEEE 802.3 MAC/PHY: autoneg, PMD caps, MAU type 30
    "0000",  # End
)

# Cisco Nexus 93180YC, NX-OS, `Ethernet1/7` with no description: NX-OS still fills the port
# description with the interface name; the system name is the bare hostname.
CISCO_NXOS = frame(
    "0180c200000e00defbaa010788cc",
    "02070400defbaa0100",
    "040c05" + b"Ethernet1/7".hex(),  # 1 + 11 bytes
    "06020078",
    text(4, "Ethernet1/7"),
    text(5, "n9k-r07"),
    text(6, "Cisco Nexus Operating System (NX-OS) Software 9.3(10)"),
    "0e0400140014",
    "0000",
)

# Arista 7050SX3, EOS, server port Ethernet12 with `description node-a12`: chassis MAC, port id
# interface name, IEEE 802.1 and 802.3 organisation TLVs (port VLAN, link aggregation, max frame size).
ARISTA_EOS = frame(
    "0180c200000e444ca8f0120c88cc",
    "020704444ca8f01200",
    "040b05" + b"Ethernet12".hex(),  # 1 + 10 bytes
    "06020078",
    text(4, "node-a12"),
    text(5, "leaf-r07"),
    text(6, "Arista Networks EOS version 4.28.3M running on an Arista Networks DCS-7050SX3-48YC8"),
    "0e0400140004",
    "fe060080c2010001",  # port VLAN 1
    "fe0900120f030100000000",  # IEEE 802.3 link aggregation: capable, not aggregated
    "fe0600120f042328",  # IEEE 802.3 max frame size 9000
    "0000",
)

# Juniper EX4300, Junos, default settings: port id = the interface's SNMP ifIndex, locally assigned
# (subtype 7), port description = the logical interface name.
JUNIPER_DEFAULT = frame(
    "0180c200000e2c6bf5a1b2c388cc",
    "0207042c6bf5a1b2c0",
    "040407" + b"527".hex(),  # Port ID: length 4, subtype 7, "527"
    "06020078",
    text(4, "ge-0/0/17.0"),
    text(5, "ex-r07"),
    text(6, "Juniper Networks, Inc. ex4300-48t Ethernet Switch, kernel JUNOS 21.4R3"),
    "0000",
)

# Juniper QFX5120 with `set protocols lldp port-id-subtype interface-name`: port id = the interface
# name with its logical unit.
JUNIPER_IFNAME = frame(
    "0180c200000ef4b52f01020388cc",
    "020704f4b52f010200",
    "040b05" + b"xe-0/0/3.0".hex(),  # 1 + 10 bytes
    "06020078",
    text(4, "xe-0/0/3.0"),
    text(5, "qfx-r07"),
    "0000",
)

# A switch that sends the port's MAC as port id and no description: no usable port number.
MAC_ONLY = frame(
    "0180c200000e02000000020388cc",
    "020704020000000200",
    "040703020000000217",  # Port ID: subtype 3 (MAC)
    "06020078",
    text(5, "dumb-sw"),
    "0000",
)


@pytest.mark.parametrize(
    ("frame_", "chassis", "port_id", "subtype", "system", "index", "name"),
    [
        (CISCO_IOS, "70:ea:1a:3b:4c:80", "Gi1/0/17", "interface-name", "sw-r07.example.org", 17, "node-17"),
        (CISCO_NXOS, "00:de:fb:aa:01:00", "Ethernet1/7", "interface-name", "n9k-r07", 7, "node-7"),
        (ARISTA_EOS, "44:4c:a8:f0:12:00", "Ethernet12", "interface-name", "leaf-r07", 12, "node-12"),
        (JUNIPER_DEFAULT, "2c:6b:f5:a1:b2:c0", "527", "local", "ex-r07", 527, "node-527"),
        (JUNIPER_IFNAME, "f4:b5:2f:01:02:00", "xe-0/0/3.0", "interface-name", "qfx-r07", 3, "node-3"),
    ],
)
def test_vendor_frames(
    frame_: bytes, chassis: str, port_id: str, subtype: str, system: str, index: int, name: str
) -> None:
    info = parse_lldp(frame_)
    assert info.chassis_id == chassis
    assert info.chassis_id_subtype == "mac"
    assert (info.port_id, info.port_id_subtype) == (port_id, subtype)
    assert info.system_name == system
    assert info.ttl == 120
    assert info.port_index == index
    assert node_name(info, (), "node-{port_index}") == name


def test_cisco_management_address() -> None:
    assert parse_lldp(CISCO_IOS).management_addresses == ("10.0.0.7",)
    assert parse_lldp(CISCO_IOS).port_description == "node-17"


def test_juniper_default_takes_the_ifindex() -> None:
    # The documented rule: the port id wins even when it is an ifIndex. Sites with Junos defaults set
    # `port-id-subtype interface-name` (JUNIPER_IFNAME) or write a naming rule with an offset.
    info = parse_lldp(JUNIPER_DEFAULT)
    assert info.port_description == "ge-0/0/17.0"
    assert info.port_index == 527


def test_mac_only_switch_has_no_index() -> None:
    info = parse_lldp(MAC_ONLY)
    assert info.port_id == "02:00:00:00:02:17"
    assert info.port_index is None


def test_hand_counted_headers_agree_with_the_lengths() -> None:
    # A guard on this file itself: every frame above must end exactly with its End TLV.
    for f in (CISCO_IOS, CISCO_NXOS, ARISTA_EOS, JUNIPER_DEFAULT, JUNIPER_IFNAME, MAC_ONLY):
        assert f.endswith(b"\x00\x00")
        parse_lldp(f[:-2])  # also valid without the End TLV
