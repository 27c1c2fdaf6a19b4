"""Receive raw LLDP frames from network interfaces (Linux AF_PACKET). I/O only: parsing is in ``lldp``.

Usage::

    with LldpCapture(["eth0", "eth1"]) as cap:
        got = cap.receive(timeout=35.0)   # CapturedFrame(ifname, frame) or None when the wait ran out
    info = parse_lldp(got.frame)

Switches send LLDP every 30 s by default, so a wait a little longer than that sees at least one frame on
every cabled port. Each interface gets its own socket that joins the LLDP multicast groups (membership
ends with the socket), so neither promiscuous mode nor a bridge's ``group_fwd_mask`` is needed on the
receiving side. Frames the host itself sends (its own lldpd) are skipped. Needs root or CAP_NET_RAW.
"""

from __future__ import annotations

import errno
import select
import socket
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType

from ..errors import BackendError, BadInput
from .lldp import ETH_P_LLDP, LLDP_DESTINATIONS

# <linux/if_packet.h>; the socket module does not export these.
SOL_PACKET = 263
PACKET_ADD_MEMBERSHIP = 1
PACKET_MR_MULTICAST = 0
PACKET_OUTGOING = 4
_MAX_FRAME = 9216  # a jumbo frame; LLDPDUs are far smaller but a switch may pad


@dataclass(frozen=True)
class CapturedFrame:
    ifname: str
    frame: bytes


class LldpCapture:
    """A context manager holding one raw socket per interface; :meth:`receive` waits a bounded time."""

    def __init__(self, ifnames: Sequence[str]):
        if isinstance(ifnames, str):
            ifnames = [ifnames]
        if not ifnames:
            raise BadInput("LLDP capture: no interface given", hint="name at least one interface, e.g. eth0")
        self.ifnames = tuple(ifnames)
        self._sockets: dict[socket.socket, str] = {}

    def __enter__(self) -> LldpCapture:
        try:
            for ifname in self.ifnames:
                self._sockets[self._open(ifname)] = ifname
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        for sock in self._sockets:
            sock.close()
        self._sockets.clear()

    @staticmethod
    def _open(ifname: str) -> socket.socket:
        try:
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_LLDP))
        except PermissionError:
            raise BackendError(
                "LLDP capture: opening a raw packet socket was refused",
                hint="run as root or grant CAP_NET_RAW",
            ) from None
        try:
            sock.bind((ifname, ETH_P_LLDP))
            ifindex = socket.if_nametoindex(ifname)
            for mac in LLDP_DESTINATIONS:
                # struct packet_mreq { int ifindex; ushort type; ushort alen; uchar address[8]; }
                mreq = struct.pack("iHH8s", ifindex, PACKET_MR_MULTICAST, len(mac), mac)
                sock.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP, mreq)
            sock.setblocking(False)
        except OSError as exc:
            sock.close()
            # bind() says ENODEV; if_nametoindex() raises an OSError without an errno
            if exc.errno in (errno.ENODEV, None):
                raise BadInput(
                    f"LLDP capture: no network interface {ifname!r}", hint="see `ip link` for the names"
                ) from None
            raise BackendError(f"LLDP capture on {ifname}: {exc.strerror or exc}") from None
        return sock

    def receive(self, timeout: float) -> CapturedFrame | None:
        """The next LLDP frame received on any of the interfaces, or None after ``timeout`` seconds."""
        if not self._sockets:
            raise BackendError("LLDP capture: receive() outside the `with` block")
        deadline = time.monotonic() + max(timeout, 0.0)
        while True:
            left = deadline - time.monotonic()
            if left < 0:
                return None
            ready, _, _ = select.select(list(self._sockets), [], [], left)
            for sock in ready:
                try:
                    frame, addr = sock.recvfrom(_MAX_FRAME)
                except BlockingIOError:
                    continue
                except OSError as exc:
                    raise BackendError(
                        f"LLDP capture on {self._sockets[sock]}: {exc.strerror or exc}"
                    ) from None
                if addr[2] == PACKET_OUTGOING:
                    continue
                return CapturedFrame(self._sockets[sock], frame)
            if not ready:
                return None  # select() only comes back empty once the wait is over

    def receive_all(self, timeout: float) -> dict[str, bytes]:
        """The first frame from each interface, waiting until every one has sent or ``timeout`` runs out."""
        got: dict[str, bytes] = {}
        deadline = time.monotonic() + max(timeout, 0.0)
        while len(got) < len(self.ifnames):
            captured = self.receive(max(deadline - time.monotonic(), 0.0))
            if captured is None:
                break
            got.setdefault(captured.ifname, captured.frame)
        return got
