"""From the provisioner's ``BootDecision`` to the iPXE context of its mode (pure apart from settings)."""

from __future__ import annotations

import re

from ..ipxe.context import BootContext, DiscoverBoot, LocalBoot, ReimageBoot, UnknownMac, WaitBoot
from ..provisioner import BootDecision, BootMode
from .state import ServerState

#: Kernel arguments of the live env: console on screen and on the first serial port (BMC SOL, QEMU).
LIVE_ARGS = ("console=tty0", "console=ttyS0,115200n8")

_UNSHOWABLE = re.compile(r"[^A-Za-z0-9 .,:;()/_=+-]")


def _reason(text: str) -> str:
    """The decision's reason as one line iPXE can ``echo`` safely (WaitBoot accepts no more)."""
    return _UNSHOWABLE.sub(" ", text).strip()[:200]


def boot_context(state: ServerState, d: BootDecision) -> BootContext:
    """:raises BadInput: a value from the catalogue or database cannot go into a script (the boundary
    answers the node a retry script and logs it)."""
    server = state.public_url
    kernel, initrd = f"{server}/boot/live/vmlinuz", f"{server}/boot/live/initrd.img"
    if d.mode is BootMode.REIMAGE:
        assert d.node is not None and d.deployment is not None and d.image is not None
        assert d.token is not None and d.image_url is not None
        return ReimageBoot(
            server_url=server,
            node=d.node.name,
            image=d.image.name,
            deployment=str(d.deployment.id),
            token=d.token,
            image_url=d.image_url,
            image_sha256=d.image.sha256.lower(),
            kernel_url=kernel,
            initrd_url=initrd,
            extra_args=LIVE_ARGS,
        )
    if d.mode is BootMode.DISCOVER:
        return DiscoverBoot(
            server_url=server, mac=d.mac, kernel_url=kernel, initrd_url=initrd, extra_args=LIVE_ARGS
        )
    if d.mode is BootMode.UNKNOWN:
        return UnknownMac(server_url=server, mac=d.mac, retry_delay=d.retry_after)
    if d.mode is BootMode.WAIT:
        assert d.node is not None
        return WaitBoot(
            server_url=server, node=d.node.name, reason=_reason(d.reason), retry_delay=d.retry_after
        )
    assert d.node is not None
    return LocalBoot(server_url=server, node=d.node.name, image=d.node.current_image or "")
