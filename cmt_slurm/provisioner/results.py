"""What the provisioner hands back to its front ends (HTTP, CLI, Slurm hooks)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

from ..catalogue import Image
from ..store.deployments import Deployment
from ..store.nodes import Node


class BootMode(StrEnum):
    #: Boot the installed disk.
    LOCAL = "local"
    #: Boot the live reimager for the node's active deployment (the script carries a fresh token).
    REIMAGE = "reimage"
    #: Unknown MAC: boot the live env in discovery mode (LLDP naming + registration).
    DISCOVER = "discover"
    #: Unknown MAC, site chose not to discover: show the MAC and retry.
    UNKNOWN = "unknown"
    #: Known node with nothing to boot yet (queued for a slot, or no intact image): retry shortly.
    WAIT = "wait"


@dataclass(frozen=True)
class BootDecision:
    mode: BootMode
    mac: str
    node: Node | None = None
    deployment: Deployment | None = None
    #: The one-time deployment token, only with ``mode == reimage``.
    token: str | None = None
    #: The image being written, only with ``mode == reimage``; ``image_url`` is where the node gets it.
    image: Image | None = None
    image_url: str | None = None
    #: Why this mode (for the script's comment line and the logs).
    reason: str = ""
    #: Seconds a ``wait``/``unknown`` script should sleep before asking again.
    retry_after: int = 10


@dataclass(frozen=True)
class Plan:
    """Everything the reimager needs for one deployment; returned only to a holder of its token."""

    deployment: int
    node: str
    image: str
    url: str
    sha256: str
    size: int
    format: str
    kernel_args: str
    #: Slurm features of the image, precomputed for ``/etc/cmt/node.json``.
    features: tuple[str, ...]
    #: The node's token for the installed OS (``/etc/cmt/node.json``); valid once the deployment is done.
    node_token: str
    #: The deployment token to report with (fresh when the plan came with a registration).
    token: str | None
    server: str
    #: Host name written into the new root (the node's name).
    hostname: str
    #: Target disk; None lets the agent pick (``cmt.disk=`` on the kernel command line overrides).
    disk: str | None = None
    #: Extra files for the new root, ``{"path", "content_base64", "mode", "owner"}`` (contracts.md, Plan).
    files: tuple[dict[str, str | None], ...] = ()

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["features"] = list(self.features)
        data["files"] = [dict(f) for f in self.files]
        return data


@dataclass(frozen=True)
class Registration:
    node: Node
    #: Set when a discovery-mode live env registered a node that has a deployment waiting for it.
    plan: Plan | None = None
    #: True when this registration created the node.
    created: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "node": self.node.as_dict(),
            "plan": None if self.plan is None else self.plan.as_dict(),
            "created": self.created,
        }
