"""iPXE boot scripts: one template per mode, rendered from a frozen, validated context (pure)."""

from .context import (
    BOOT_QUERY,
    BootContext,
    DiscoverBoot,
    LocalBoot,
    ReimageBoot,
    UnknownMac,
    WaitBoot,
)
from .render import SHIPPED_TEMPLATES, IpxeRenderer, render_ipxe

__all__ = [
    "BOOT_QUERY",
    "SHIPPED_TEMPLATES",
    "BootContext",
    "DiscoverBoot",
    "IpxeRenderer",
    "LocalBoot",
    "ReimageBoot",
    "UnknownMac",
    "WaitBoot",
    "render_ipxe",
]
