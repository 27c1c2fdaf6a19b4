"""Decode one LLDP frame (IEEE 802.1AB) into the fields node naming needs. Pure: bytes in, data out.

Input is either a whole Ethernet frame (destination 01:80:c2:00:00:0e, :03 or :00, optional 802.1Q/802.1ad
tags, EtherType 0x88cc) or a bare LLDPDU (what follows the EtherType). The two cannot be confused: an
LLDPDU starts with the Chassis ID TLV, whose first byte is 0x02 or 0x03, while an LLDP frame starts with
the multicast address 0x01.

Rules, chosen to name nodes reliably rather than to validate switches:

- The first three TLVs must be Chassis ID, Port ID and TTL, in that order; a second one of any of them is
  refused (802.1AB says such an LLDPDU is discarded).
- Unknown TLV types and organisation-specific TLVs (type 127) are skipped.
- A TLV whose length runs past the end of the data is refused with its type and offset. An LLDPDU that
  ends on a TLV boundary without an End TLV is accepted; bytes after the End TLV (padding, an FCS) are
  ignored.
- MAC-address ids print as ``aa:bb:cc:dd:ee:ff``, network-address ids as the IP address (IANA family 1
  = IPv4, 2 = IPv6), every other id as text (UTF-8 with replacement characters, NULs removed).
- ``port_index`` is described in :func:`port_index_of`.
"""

from __future__ import annotations

import ipaddress
import re
import struct
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from ..errors import BadInput

ETH_P_LLDP = 0x88CC
LLDP_DESTINATIONS = (
    bytes.fromhex("0180c200000e"),  # nearest bridge: what switches send to hosts
    bytes.fromhex("0180c2000003"),  # nearest non-TPMR bridge
    bytes.fromhex("0180c2000000"),  # nearest customer bridge
)
_VLAN_TPIDS = (0x8100, 0x88A8, 0x9100)

TLV_END, TLV_CHASSIS_ID, TLV_PORT_ID, TLV_TTL = 0, 1, 2, 3
TLV_PORT_DESCRIPTION, TLV_SYSTEM_NAME, TLV_SYSTEM_DESCRIPTION = 4, 5, 6
TLV_MANAGEMENT_ADDRESS, TLV_ORG_SPECIFIC = 8, 127

TLV_NAMES: dict[int, str] = {
    0: "End",
    1: "Chassis ID",
    2: "Port ID",
    3: "TTL",
    4: "Port Description",
    5: "System Name",
    6: "System Description",
    7: "System Capabilities",
    8: "Management Address",
    127: "Organisation-specific",
}

CHASSIS_SUBTYPES: dict[int, str] = {
    1: "chassis-component",
    2: "interface-alias",
    3: "port-component",
    4: "mac",
    5: "network-address",
    6: "interface-name",
    7: "local",
}
PORT_SUBTYPES: dict[int, str] = {
    1: "interface-alias",
    2: "port-component",
    3: "mac",
    4: "network-address",
    5: "interface-name",
    6: "agent-circuit-id",
    7: "local",
}
#: Id subtypes whose digits are not a port number.
ADDRESS_SUBTYPES = frozenset({"mac", "network-address"})


@dataclass(frozen=True)
class LldpInfo:
    """What one LLDP frame says about the switch port a node is plugged into.

    ``chassis_id_subtype`` and ``port_id_subtype`` are names from :data:`CHASSIS_SUBTYPES` and
    :data:`PORT_SUBTYPES` (``reserved-<n>`` for others). Text fields the frame did not carry are None.
    """

    chassis_id: str
    chassis_id_subtype: str
    port_id: str
    port_id_subtype: str
    port_description: str | None
    system_name: str | None
    system_description: str | None
    ttl: int
    port_index: int | None
    management_addresses: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["management_addresses"] = list(self.management_addresses)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "lldp") -> LldpInfo:
        """Rebuild from :meth:`as_dict` output (e.g. a registration request body).

        ``port_index`` is always recomputed from the ids, never taken from ``data``: the server names
        nodes by its own reading of what the switch said.

        :raises BadInput: naming the field that is missing or of the wrong type.
        """
        if not isinstance(data, Mapping):
            raise BadInput(f"{where}: must be an object", hint="send the fields of `cmt lldp decode --json`")

        def text(key: str, required: bool) -> str | None:
            value = data.get(key)
            if value is None and not required:
                return None
            if not isinstance(value, str) or (required and not value):
                want = "a non-empty string" if required else "a string or null"
                raise BadInput(
                    f"{where}.{key}: must be {want}", hint="send the fields of `cmt lldp decode --json`"
                )
            if len(value) > 512:
                raise BadInput(f"{where}.{key}: longer than 512 characters")
            return value

        ttl = data.get("ttl", 0)
        if not isinstance(ttl, int) or isinstance(ttl, bool) or not 0 <= ttl <= 65535:
            raise BadInput(f"{where}.ttl: must be an integer 0..65535")
        addresses = data.get("management_addresses") or []
        if not isinstance(addresses, list | tuple) or not all(isinstance(a, str) for a in addresses):
            raise BadInput(f"{where}.management_addresses: must be a list of strings")
        port_id, port_subtype = text("port_id", True), text("port_id_subtype", True)
        description = text("port_description", False)
        assert port_id is not None and port_subtype is not None
        return cls(
            chassis_id=text("chassis_id", True) or "",
            chassis_id_subtype=text("chassis_id_subtype", True) or "",
            port_id=port_id,
            port_id_subtype=port_subtype,
            port_description=description,
            system_name=text("system_name", False),
            system_description=text("system_description", False),
            ttl=ttl,
            port_index=port_index_of(port_id, port_subtype, description),
            management_addresses=tuple(addresses),
        )


# A trailing ".N" after a digit is a logical unit / subinterface (Junos `xe-0/0/3.0`, `Ethernet1/7.100`):
# it says nothing about the physical port, so it is dropped before taking the last number.
_UNIT_SUFFIX = re.compile(r"(?<=\d)\.\d+$")
_NUMBER = re.compile(r"\d+")


def last_number(text: str) -> int | None:
    """The last run of ASCII digits in ``text`` once a ``.N`` unit suffix is removed, else None.

    ``Ethernet1/7`` → 7, ``Gi1/0/17`` → 17, ``swp12`` → 12, ``xe-0/0/3.0`` → 3, ``Ethernet1/7.100`` → 7,
    ``et-0/0/4:2`` (a breakout lane) → 2, ``uplink`` → None.
    """
    numbers = _NUMBER.findall(_UNIT_SUFFIX.sub("", text.strip()))
    return int(numbers[-1]) if numbers else None


def port_index_of(port_id: str, port_id_subtype: str, port_description: str | None) -> int | None:
    """The switch port number: the last number in the port id, else in the port description, else None.

    A port id of subtype ``mac`` or ``network-address`` is never read for digits (the digits of an
    address are not a port number); the description is tried instead. See :func:`last_number`.
    """
    if port_id_subtype not in ADDRESS_SUBTYPES:
        index = last_number(port_id)
        if index is not None:
            return index
    if port_description:
        return last_number(port_description)
    return None


def _bytes(n: int) -> str:
    return "1 byte" if n == 1 else f"{n} bytes"


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace").replace("\x00", "")


def _mac(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


def _network_address(raw: bytes) -> str:
    family, addr = (raw[0], raw[1:]) if raw else (0, b"")
    if family == 1 and len(addr) == 4:
        return str(ipaddress.IPv4Address(addr))
    if family == 2 and len(addr) == 16:
        return str(ipaddress.IPv6Address(addr))
    # Another family (or a bad length): show it rather than refuse; naming never uses it.
    return f"family-{family}:{addr.hex()}"


def _id(raw: bytes, subtypes: Mapping[int, str], tlv: int, offset: int) -> tuple[str, str]:
    name = TLV_NAMES[tlv]
    if len(raw) < 2:
        raise BadInput(
            f"LLDP {name} TLV at offset {offset}: {_bytes(len(raw))}, needs a subtype and an id",
            hint="the frame is malformed; capture it again",
        )
    subtype = subtypes.get(raw[0], f"reserved-{raw[0]}")
    value = raw[1:]
    if subtype == "mac":
        return _mac(value), subtype
    if subtype == "network-address":
        return _network_address(value), subtype
    return _text(value), subtype


def _management_address(raw: bytes, offset: int) -> str:
    # address string length (1) | family (1) | address | if-numbering subtype (1) | if number (4) |
    # OID length (1) | OID
    if len(raw) < 9 or not 2 <= raw[0] <= 32 or len(raw) < 1 + raw[0] + 6:
        raise BadInput(
            f"LLDP Management Address TLV at offset {offset}: inner lengths do not fit its {len(raw)} bytes",
            hint="the frame is malformed; capture it again",
        )
    end = 1 + raw[0] + 5
    if len(raw) < end + 1 + raw[end]:
        raise BadInput(
            f"LLDP Management Address TLV at offset {offset}: OID runs past the TLV",
            hint="the frame is malformed; capture it again",
        )
    return _network_address(raw[1 : 1 + raw[0]])


def lldpdu_of(frame: bytes) -> tuple[bytes, int]:
    """The LLDPDU inside ``frame`` and its offset there; ``frame`` may already be a bare LLDPDU.

    :raises BadInput: when the frame is not an LLDP frame.
    """
    if len(frame) >= 2 and frame[0] >> 1 == TLV_CHASSIS_ID:
        return frame, 0
    if len(frame) < 14:
        raise BadInput(
            f"LLDP frame: {len(frame)} bytes is too short for an Ethernet header",
            hint="pass a whole Ethernet frame (from a capture) or a bare LLDPDU",
        )
    if frame[:6] not in LLDP_DESTINATIONS:
        raise BadInput(
            f"LLDP frame: destination {_mac(frame[:6])} is not an LLDP multicast address",
            hint="LLDP frames go to 01:80:c2:00:00:0e (or :03, :00)",
        )
    offset = 12
    (ethertype,) = struct.unpack_from("!H", frame, offset)
    while ethertype in _VLAN_TPIDS:
        offset += 4
        if len(frame) < offset + 2:
            raise BadInput(f"LLDP frame: VLAN tag at offset {offset - 4} runs past the frame")
        (ethertype,) = struct.unpack_from("!H", frame, offset)
    if ethertype != ETH_P_LLDP:
        raise BadInput(
            f"LLDP frame: EtherType 0x{ethertype:04x} at offset {offset} is not LLDP (0x88cc)",
            hint="capture with the filter 'ether proto 0x88cc'",
        )
    return frame[offset + 2 :], offset + 2


def parse_lldp(frame: bytes) -> LldpInfo:
    """Decode an Ethernet LLDP frame or a bare LLDPDU (see the module docstring for the rules).

    Offsets in error messages count from the start of ``frame``.

    :raises BadInput: not LLDP, mandatory TLVs missing or out of order, a duplicate mandatory TLV, or a
        TLV (or a field inside one) running past its end.
    """
    if not isinstance(frame, bytes | bytearray | memoryview):
        raise BadInput("LLDP frame: expected bytes")
    frame = bytes(frame)
    pdu, base = lldpdu_of(frame)
    fields: dict[int, Any] = {}
    addresses: list[str] = []
    pos, count = 0, 0
    while pos < len(pdu):
        offset = base + pos
        if len(pdu) - pos < 2:
            raise BadInput(
                f"LLDP TLV header at offset {offset}: 1 byte left, a header needs 2",
                hint="the frame is truncated; capture it again",
            )
        (header,) = struct.unpack_from("!H", pdu, pos)
        tlv, length = header >> 9, header & 0x1FF
        name = TLV_NAMES.get(tlv, f"type {tlv}")
        if pos + 2 + length > len(pdu):
            raise BadInput(
                f"LLDP {name} TLV at offset {offset}: length {length} runs past the end of the frame "
                f"({_bytes(len(pdu) - pos - 2)} left)",
                hint="the frame is truncated; capture it again",
            )
        value = pdu[pos + 2 : pos + 2 + length]
        pos += 2 + length
        if count < 3 and tlv != count + 1:
            expected = TLV_NAMES[count + 1]
            raise BadInput(
                f"LLDP {name} TLV at offset {offset}: expected the {expected} TLV there "
                "(Chassis ID, Port ID and TTL must come first, in that order)",
                hint="this is not a valid LLDPDU",
            )
        count += 1
        if tlv == TLV_END:
            break
        if tlv in (TLV_CHASSIS_ID, TLV_PORT_ID, TLV_TTL) and tlv in fields:
            raise BadInput(
                f"LLDP {name} TLV at offset {offset}: a second {name} TLV", hint="this is not a valid LLDPDU"
            )
        if tlv == TLV_CHASSIS_ID:
            fields[tlv] = _id(value, CHASSIS_SUBTYPES, tlv, offset)
        elif tlv == TLV_PORT_ID:
            fields[tlv] = _id(value, PORT_SUBTYPES, tlv, offset)
        elif tlv == TLV_TTL:
            if length < 2:
                raise BadInput(f"LLDP TTL TLV at offset {offset}: length {length}, needs 2")
            fields[tlv] = struct.unpack_from("!H", value)[0]
        elif tlv in (TLV_PORT_DESCRIPTION, TLV_SYSTEM_NAME, TLV_SYSTEM_DESCRIPTION):
            fields.setdefault(tlv, _text(value))  # first one wins; 802.1AB allows at most one
        elif tlv == TLV_MANAGEMENT_ADDRESS:
            addresses.append(_management_address(value, offset))
        # everything else (capabilities, organisation-specific, unknown types) is not needed for naming
    if count < 3:
        missing = ", ".join(TLV_NAMES[t] for t in (1, 2, 3) if t not in fields)
        raise BadInput(
            f"LLDP frame: ends at offset {base + pos} without the mandatory {missing} TLV",
            hint="the frame is truncated or not LLDP; capture it again",
        )
    chassis_id, chassis_subtype = fields[TLV_CHASSIS_ID]
    port_id, port_subtype = fields[TLV_PORT_ID]
    description = fields.get(TLV_PORT_DESCRIPTION)
    return LldpInfo(
        chassis_id=chassis_id,
        chassis_id_subtype=chassis_subtype,
        port_id=port_id,
        port_id_subtype=port_subtype,
        port_description=description,
        system_name=fields.get(TLV_SYSTEM_NAME),
        system_description=fields.get(TLV_SYSTEM_DESCRIPTION),
        ttl=fields[TLV_TTL],
        port_index=port_index_of(port_id, port_subtype, description),
        management_addresses=tuple(addresses),
    )
