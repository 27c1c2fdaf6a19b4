"""The lab's recorded state (``<workdir>/lab.json``): what ``down`` needs to remove every trace."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import procs, qemu


def lab_id(workdir: Path) -> str:
    """Short and stable per work directory, so two labs (two checkouts, CI and a developer) coexist."""
    return hashlib.sha256(str(workdir.resolve()).encode()).hexdigest()[:6]


@dataclass
class VmState:
    name: str
    index: int
    mac: str
    tap: str
    port_id: str
    spec: qemu.VmSpec

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "index": self.index,
            "mac": self.mac,
            "tap": self.tap,
            "port_id": self.port_id,
        }


@dataclass
class LabState:
    id: str
    netns: str
    nodes: int
    host_port: int = 0
    accel: str = "tcg"
    live_dir: str = ""
    processes: dict[str, procs.ProcRecord] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "netns": self.netns,
            "nodes": self.nodes,
            "host_port": self.host_port,
            "accel": self.accel,
            "live_dir": self.live_dir,
            "processes": {k: v.to_json() for k, v in self.processes.items()},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LabState:
        return cls(
            str(data["id"]),
            str(data["netns"]),
            int(data["nodes"]),
            int(data.get("host_port", 0)),
            str(data.get("accel", "tcg")),
            str(data.get("live_dir", "")),
            {k: procs.ProcRecord.from_json(v) for k, v in dict(data.get("processes", {})).items()},
        )
