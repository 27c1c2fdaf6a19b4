"""Builders shared by the provisioner tests: a small catalogue, LLDP frames' decoded form, a clock."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from cmt_slurm.agent.lldp import LldpInfo
from cmt_slurm.catalogue import Catalogue, Image
from cmt_slurm.config import NamingRule, Settings
from cmt_slurm.provisioner import BootMode, Provisioner
from cmt_slurm.states import Stage
from cmt_slurm.store import Store
from cmt_slurm.versions import Version

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


class Clock:
    """A clock the test moves; the provisioner reads it for every timestamp."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def tick(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def image(name: str, os: str, glibc: str, *, default: bool = False, size: int = 1000) -> Image:
    return Image(
        name=name,
        os=os,
        os_name=os.rstrip("0123456789").capitalize(),
        os_version=os.lstrip("abcdefghijklmnopqrstuvwxyz"),
        glibc=Version.parse(glibc),
        arch="x86_64",
        format="qcow2",
        url=f"https://images.example/{name}.qcow2",
        sha256="ab" * 32,
        size=size,
        default=default,
        built=date(2026, 11, 1),
    )


CATALOGUE = Catalogue.of(
    [
        image("debian12-2026.11", "debian12", "2.36", default=True),
        image("debian13-2026.11", "debian13", "2.41"),
        image("rocky9-2026.10", "rocky9", "2.34"),
    ]
)


def lldp(port: int, switch: str = "sw-r07") -> LldpInfo:
    return LldpInfo(
        chassis_id="00:11:22:33:44:55",
        chassis_id_subtype="mac",
        port_id=f"Ethernet{port}",
        port_id_subtype="interface-name",
        port_description=None,
        system_name=switch,
        system_description=None,
        ttl=120,
        port_index=port,
    )


def make(store: Store, clock: Clock, catalogue: Catalogue = CATALOGUE, **settings: Any) -> Provisioner:
    base = Settings(
        data_dir=Path("/nonexistent"),
        naming=(NamingRule(switch="sw-r07", template="r07n{port_index:02d}"),),
        max_concurrent_reimages=2,
    )
    return Provisioner(store, catalogue, replace(base, **settings), clock=clock)


def mac(i: int) -> str:
    return f"52:54:00:00:00:{i:02x}"


STEPS = [Stage.TRANSFER, Stage.VERIFY, Stage.WRITE, Stage.GROW, Stage.IDENTITY, Stage.KEXEC]


def kinds(prov: Provisioner, node: str) -> list[tuple[str, str | None, str | None]]:
    return [(e.kind, e.from_state, e.to_state) for e in prov.events(node=node)]


def ready_node(prov: Provisioner, port: int = 3, image: str | None = "rocky9-2026.10") -> str:
    """A registered node; with ``image``, adopted as running it (as after an earlier reimage)."""
    name = prov.register_node([mac(port)], lldp(port)).node.name
    if image is not None:
        token = prov.set_target(name, image, "admin:test").token
        assert token is not None
        dep_id, dep_token = run_to_kexec(prov, name)
        plan = prov.plan(dep_id, dep_token)  # the plan's node token becomes the node's
        prov.node_ready(name, image, None, plan.node_token)
        NODE_TOKENS[name] = plan.node_token
    return name


NODE_TOKENS: dict[str, str] = {}  # node name -> its node token, for nodes made by ready_node


def run_to_kexec(prov: Provisioner, name: str) -> tuple[int, str]:
    decision = prov.boot_decision(prov.get_node(name).macs[0])
    assert decision.mode is BootMode.REIMAGE and decision.token and decision.deployment
    dep_id, token = decision.deployment.id, decision.token
    prov.report(dep_id, token, Stage.LIVE)
    for stage in STEPS:
        prov.report(dep_id, token, stage)
    return dep_id, token
