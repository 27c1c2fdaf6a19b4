"""What every request handler of one app instance shares: settings, the provisioner, metrics.

Kept on ``app.extensions["cmt"]`` (no module-level singletons: tests build many apps in one process).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from flask import current_app

from ..config import Settings
from ..ipxe.context import BOOT_QUERY

if TYPE_CHECKING:
    from ..catalogue import Catalogue
    from ..provisioner import Provisioner
    from .metrics import ServerMetrics


@dataclass
class ServerState:
    settings: Settings
    provisioner: Provisioner
    metrics: ServerMetrics
    #: The catalogue as it is now (an image sync swaps it); byte serving looks names up here.
    catalogue: Callable[[], Catalogue]

    @property
    def public_url(self) -> str:
        return self.settings.public_url.rstrip("/")

    @property
    def boot_script_url(self) -> str:
        """The URL an iPXE client chains to fetch (again) its own script."""
        return f"{self.public_url}/boot/ipxe?{BOOT_QUERY}"


def server_state() -> ServerState:
    state = current_app.extensions["cmt"]
    assert isinstance(state, ServerState)
    return state
