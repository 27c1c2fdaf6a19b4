"""parse_lldp: the frames lldpd really sends, the TLV rules, and what it refuses."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cmt_slurm.agent.lldp import LldpInfo, last_number, parse_lldp, port_index_of
from cmt_slurm.errors import BadInput

DATA = Path(__file__).resolve().parents[1] / "data" / "lldp"
DST = bytes.fromhex("0180c200000e")
SRC = bytes.fromhex("020000000101")


def tlv(kind: int, value: bytes) -> bytes:
    return struct.pack("!H", kind << 9 | len(value)) + value


def pdu(
    chassis: bytes = b"\x04" + bytes.fromhex("001122aabbcc"),
    port: bytes = b"\x05Ethernet1/7",
    ttl: int = 120,
    *extra: bytes,
    end: bool = True,
) -> bytes:
    body = tlv(1, chassis) + tlv(2, port) + tlv(3, struct.pack("!H", ttl)) + b"".join(extra)
    return body + (tlv(0, b"") if end else b"")


def eth(lldpdu: bytes, dst: bytes = DST, vlan: int | None = None) -> bytes:
    tag = struct.pack("!HH", 0x8100, vlan) if vlan is not None else b""
    return dst + SRC + tag + b"\x88\xcc" + lldpdu


# --- the saved lldpd captures (see tests/data/lldp/README.md) --------------------------------------------


def test_lldpd_local_capture() -> None:
    info = parse_lldp((DATA / "lldpd-local.bin").read_bytes())
    assert info == LldpInfo(
        chassis_id="02:00:00:00:12:01",
        chassis_id_subtype="mac",
        port_id="Ethernet1/7",
        port_id_subtype="local",
        port_description="node uplink 7",
        system_name="sw-r07",
        system_description="cmt-slurm test switch (lldpd)",
        ttl=4,
        port_index=7,
        management_addresses=("192.0.2.1", "fe80::ff:fe00:1201"),
    )


def test_lldpd_ifname_capture() -> None:
    info = parse_lldp((DATA / "lldpd-ifname.bin").read_bytes())
    assert (info.port_id, info.port_id_subtype, info.port_index) == ("swp12", "interface-name", 12)


def test_lldpd_macaddress_capture_takes_index_from_description_not_mac() -> None:
    info = parse_lldp((DATA / "lldpd-macaddress.bin").read_bytes())
    assert (info.port_id, info.port_id_subtype) == ("02:00:00:00:12:01", "mac")
    assert info.port_description == "swp12"
    assert info.port_index == 12


def test_capture_without_its_ethernet_header_decodes_the_same() -> None:
    frame = (DATA / "lldpd-local.bin").read_bytes()
    assert parse_lldp(frame[14:]) == parse_lldp(frame)


# --- framing --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dst", ["0180c200000e", "0180c2000003", "0180c2000000"])
def test_all_three_lldp_destinations(dst: str) -> None:
    assert parse_lldp(eth(pdu(), dst=bytes.fromhex(dst))).port_id == "Ethernet1/7"


def test_vlan_tagged_frame() -> None:
    assert parse_lldp(eth(pdu(), vlan=42)).port_index == 7


def test_padding_and_fcs_after_end_are_ignored() -> None:
    assert parse_lldp(eth(pdu()) + b"\x00" * 20 + b"\xde\xad\xbe\xef").ttl == 120


def test_missing_end_tlv_is_accepted() -> None:
    assert parse_lldp(eth(pdu(end=False))).port_index == 7


def test_wrong_destination_refused() -> None:
    with pytest.raises(BadInput, match=r"destination ff:ff:ff:ff:ff:ff is not an LLDP multicast"):
        parse_lldp(eth(pdu(), dst=b"\xff" * 6))


def test_wrong_ethertype_refused() -> None:
    frame = DST + SRC + b"\x08\x00" + pdu()
    with pytest.raises(BadInput, match=r"EtherType 0x0800 at offset 12 is not LLDP"):
        parse_lldp(frame)


def test_short_frame_refused() -> None:
    with pytest.raises(BadInput, match="too short for an Ethernet header"):
        parse_lldp(DST + SRC)


# --- TLV rules -------------------------------------------------------------------------------------------


def test_truncated_tlv_names_type_and_offset() -> None:
    frame = eth(pdu(b"\x04" + bytes(6), b"\x05swp1", 120, tlv(5, b"sw-r07")))
    cut = frame[: len(frame) - 2 - 3]  # drop the End TLV and the last 3 bytes of the system name
    with pytest.raises(BadInput) as err:
        parse_lldp(cut)
    # 14 (Ethernet) + 9 (chassis) + 7 (port) + 4 (TTL) = offset 34
    assert err.value.message == (
        "LLDP System Name TLV at offset 34: length 6 runs past the end of the frame (3 bytes left)"
    )
    assert err.value.hint


def test_lone_trailing_byte_refused() -> None:
    with pytest.raises(BadInput, match="TLV header at offset 34: 1 byte left"):
        parse_lldp(eth(pdu(b"\x04" + bytes(6), b"\x05swp1", 120, end=False) + b"\x0a"))


def test_mandatory_tlvs_out_of_order() -> None:
    body = tlv(2, b"\x05swp1") + tlv(1, b"\x04" + bytes(6)) + tlv(3, b"\x00\x78") + tlv(0, b"")
    with pytest.raises(BadInput, match=r"Port ID TLV at offset 14: expected the Chassis ID TLV"):
        parse_lldp(eth(body))


def test_end_before_ttl() -> None:
    body = tlv(1, b"\x04" + bytes(6)) + tlv(2, b"\x05swp1") + tlv(0, b"")
    with pytest.raises(BadInput, match=r"End TLV at offset 30: expected the TTL TLV"):
        parse_lldp(eth(body))


def test_frame_ending_before_mandatory_tlvs() -> None:
    with pytest.raises(BadInput, match=r"without the mandatory Port ID, TTL TLV"):
        parse_lldp(eth(tlv(1, b"\x04" + bytes(6))))


def test_duplicate_port_id_refused() -> None:
    with pytest.raises(BadInput, match="a second Port ID TLV"):
        parse_lldp(eth(pdu(b"\x04" + bytes(6), b"\x05swp1", 120, tlv(2, b"\x05swp2"))))


def test_empty_id_refused() -> None:
    with pytest.raises(BadInput, match=r"Port ID TLV at offset 23: 1 byte, needs a subtype"):
        parse_lldp(eth(pdu(b"\x04" + bytes(6), b"\x05")))


def test_short_ttl_refused() -> None:
    body = tlv(1, b"\x04" + bytes(6)) + tlv(2, b"\x05swp1") + tlv(3, b"\x01")
    with pytest.raises(BadInput, match="TTL TLV at offset 30: length 1, needs 2"):
        parse_lldp(eth(body))


def test_unknown_and_org_specific_tlvs_skipped() -> None:
    extra = (
        tlv(9, b"\x01\x02\x03"),  # reserved type
        tlv(127, bytes.fromhex("0080c2") + b"\x01\x00\x2a"),  # IEEE 802.1 port VLAN id
        tlv(127, b""),  # malformed org TLV (no OUI): still skipped, naming does not need it
        tlv(4, b"node-3 uplink"),
    )
    info = parse_lldp(eth(pdu(b"\x04" + bytes(6), b"\x05swp3", 120, *extra)))
    assert info.port_description == "node-3 uplink"
    assert info.port_index == 3


def test_text_is_utf8_with_replacement_and_nuls_removed() -> None:
    info = parse_lldp(eth(pdu(b"\x07" + b"rack\x00 7", b"\x07p\xffort 9\x00", 120, tlv(5, b"sw\x00-1\x00"))))
    assert info.chassis_id == "rack 7"
    assert info.chassis_id_subtype == "local"
    assert info.port_id == "p\ufffdort 9"
    assert info.system_name == "sw-1"


def test_first_optional_text_tlv_wins() -> None:
    info = parse_lldp(eth(pdu(b"\x04" + bytes(6), b"\x05swp1", 120, tlv(5, b"first"), tlv(5, b"second"))))
    assert info.system_name == "first"


def test_reserved_subtype_is_text() -> None:
    info = parse_lldp(eth(pdu(b"\x09rack-7", b"\x00port 4")))
    assert (info.chassis_id, info.chassis_id_subtype) == ("rack-7", "reserved-9")
    assert (info.port_id_subtype, info.port_index) == ("reserved-0", 4)


# --- id formats ------------------------------------------------------------------------------------------


def test_mac_ids_are_lowercase_colon_hex() -> None:
    info = parse_lldp(
        eth(pdu(b"\x04" + bytes.fromhex("AABBCCDDEEFF"), b"\x03" + bytes.fromhex("0A0B0C0D0E17")))
    )
    assert info.chassis_id == "aa:bb:cc:dd:ee:ff"
    assert info.port_id == "0a:0b:0c:0d:0e:17"
    assert info.port_index is None  # never the 0x17 (or 23) of the MAC


def test_network_address_ids() -> None:
    v4 = b"\x05\x01" + bytes([10, 0, 7, 1])
    v6 = b"\x04\x02" + bytes.fromhex("20010db8000000000000000000000017")
    info = parse_lldp(eth(pdu(v4, v6, 120, tlv(4, b"Gi1/0/17"))))
    assert (info.chassis_id, info.chassis_id_subtype) == ("10.0.7.1", "network-address")
    assert (info.port_id, info.port_id_subtype) == ("2001:db8::17", "network-address")
    assert info.port_index == 17  # from the description, not the address


def test_network_address_of_another_family_is_shown_not_refused() -> None:
    info = parse_lldp(eth(pdu(b"\x05\x06" + b"\x01\x02", b"\x05swp1")))
    assert info.chassis_id == "family-6:0102"


def test_management_addresses() -> None:
    # addr string length 5, family 1, 4 bytes; if-numbering 2 (ifIndex), if number 7; OID length 0
    mgmt = b"\x05\x01" + bytes([192, 0, 2, 9]) + b"\x02" + struct.pack("!I", 7) + b"\x00"
    info = parse_lldp(eth(pdu(b"\x04" + bytes(6), b"\x05swp1", 120, tlv(8, mgmt))))
    assert info.management_addresses == ("192.0.2.9",)


def test_management_address_with_overlong_oid_refused() -> None:
    mgmt = b"\x05\x01" + bytes(4) + b"\x02" + bytes(4) + b"\x09abc"
    with pytest.raises(BadInput, match="Management Address TLV at offset 34: OID runs past the TLV"):
        parse_lldp(eth(pdu(b"\x04" + bytes(6), b"\x05swp1", 120, tlv(8, mgmt))))


# --- port_index ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "index"),
    [
        ("Ethernet1/7", 7),
        ("Gi1/0/17", 17),
        ("GigabitEthernet1/0/17", 17),
        ("swp12", 12),
        ("Ethernet49/1", 1),  # an Arista QSFP port's first lane: the rule gives 1 (see the report)
        ("1/1/17", 17),
        ("17", 17),
        ("xe-0/0/3.0", 3),  # Junos logical unit: dropped
        ("ge-0/0/10.0", 10),
        ("Ethernet1/7.100", 7),  # subinterface: dropped
        ("et-0/0/4:2", 2),  # breakout lane: the last number is the lane
        ("swp1s3", 3),
        ("port 8 ", 8),
        ("uplink", None),
        ("", None),
        ("v1.0", 1),  # '.0' after a digit is taken as a unit suffix
        ("port.7", 7),  # '.7' after a letter is not
    ],
)
def test_last_number(text: str, index: int | None) -> None:
    assert last_number(text) == index


def test_port_index_prefers_port_id_then_description() -> None:
    assert port_index_of("Ethernet1/7", "interface-name", "node 9") == 7
    assert port_index_of("uplink", "local", "Gi1/0/9") == 9
    assert port_index_of("uplink", "local", None) is None
    assert port_index_of("00:11:22:33:44:55", "mac", None) is None
    assert port_index_of("10.0.0.5", "network-address", "swp5") == 5


# --- from_dict (the server's view of a registration) -----------------------------------------------------


def test_from_dict_round_trips_and_recomputes_port_index() -> None:
    info = parse_lldp((DATA / "lldpd-local.bin").read_bytes())
    data = info.as_dict() | {"port_index": 99}
    assert LldpInfo.from_dict(data) == info


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"port_id": ""}, r"lldp.port_id: must be a non-empty string"),
        ({"system_name": 5}, r"lldp.system_name: must be a string or null"),
        ({"ttl": -1}, r"lldp.ttl: must be an integer 0..65535"),
        ({"ttl": True}, r"lldp.ttl"),
        ({"management_addresses": "x"}, r"lldp.management_addresses"),
        ({"port_description": "x" * 600}, r"longer than 512"),
    ],
)
def test_from_dict_refuses(change: dict[str, object], message: str) -> None:
    data = parse_lldp((DATA / "lldpd-local.bin").read_bytes()).as_dict() | change
    with pytest.raises(BadInput, match=message):
        LldpInfo.from_dict(data)


def test_from_dict_refuses_non_object() -> None:
    with pytest.raises(BadInput, match="must be an object"):
        LldpInfo.from_dict([])  # type: ignore[arg-type]


# --- no input crashes it with anything but BadInput ------------------------------------------------------


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_only_raise_bad_input(data: bytes) -> None:
    for frame in (data, eth(data), DST + SRC + b"\x88\xcc" + b"\x02" + data):
        try:
            info = parse_lldp(frame)
        except BadInput:
            continue
        assert isinstance(info, LldpInfo)


_tlv_strategy = st.tuples(st.integers(0, 127), st.binary(max_size=40)).map(lambda kv: tlv(*kv))


@settings(max_examples=400, deadline=None)
@given(
    st.binary(min_size=1, max_size=20),
    st.binary(min_size=1, max_size=20),
    st.lists(_tlv_strategy, max_size=8),
    st.integers(0, 60),
)
def test_well_formed_prefix_with_random_tlvs_and_cuts(
    chassis: bytes, port: bytes, extra: list[bytes], cut: int
) -> None:
    frame = eth(pdu(chassis, port, 120, *extra))
    for candidate in (frame, frame[: max(len(frame) - cut, 0)]):
        try:
            info = parse_lldp(candidate)
        except BadInput:
            continue
        assert info.ttl == 120
