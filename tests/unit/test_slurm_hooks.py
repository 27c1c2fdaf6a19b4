from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from cmt_slurm.catalogue import Catalogue, load_catalogue
from cmt_slurm.constraints import requirement_from_constraint
from cmt_slurm.errors import BadInput, NoMatch, NotFound
from cmt_slurm.slurm.client import JobInfo, NodeInfo
from cmt_slurm.slurm.hooks import (
    JobContext,
    changeable_terms,
    epilog_default,
    needs_image,
    prolog_helpers,
    prolog_reimage,
    wait_for_nodes,
)
from cmt_slurm.slurm.reimage import reimage_node

CATALOGUE = Path(__file__).resolve().parent.parent / "data" / "catalogue"


@pytest.fixture(scope="module")
def cat() -> Catalogue:
    return load_catalogue(CATALOGUE)


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.t += s


@dataclass
class ScriptedSlurm:
    """Each nodes() call returns the next snapshot (the last repeats)."""

    snapshots: list[list[NodeInfo]]
    calls: list[tuple[Any, ...]] = field(default_factory=list)

    def nodes(self) -> list[NodeInfo]:
        return self.snapshots.pop(0) if len(self.snapshots) > 1 else self.snapshots[0]

    def reboot(self, nodes: list[str], reason: str, *, asap: bool = True, nextstate: str = "resume") -> None:
        self.calls.append(("reboot", tuple(nodes), reason, asap))


def n(name: str, *flags: str, active: tuple[str, ...] = ()) -> NodeInfo:
    return NodeInfo(name, "allocated", frozenset(flags), active_features=active)


@dataclass
class FakeServer:
    info: dict[str, dict[str, Any]]
    targets: list[tuple[str, str]] = field(default_factory=list)
    after_target: dict[str, dict[str, Any]] = field(default_factory=dict)

    def node(self, name: str) -> dict[str, Any]:
        return self.info[name]

    def set_target(self, name: str, image: str) -> dict[str, Any]:
        self.targets.append((name, image))
        if name in self.after_target:
            self.info[name] = self.after_target[name]
        return {"deployment": {"id": 1}}


@dataclass
class FakePower:
    rebooted: list[str] = field(default_factory=list)

    def reboot(self, node: str) -> None:
        self.rebooted.append(node)


def test_job_context_from_slurmctld_environment() -> None:
    env = {"SLURM_JOB_ID": "42", "SLURM_JOB_NODELIST": "n[1-2],gpu01", "SLURM_JOB_CONSTRAINTS": "os=rocky9"}
    assert JobContext.from_env(env) == JobContext(42, ("n1", "n2", "gpu01"), "os=rocky9")
    with pytest.raises(BadInput, match="SLURM_JOB_ID is not set"):
        JobContext.from_env({})


def test_changeable_terms() -> None:
    assert changeable_terms("os=rocky9&ib,libc=2.28&image=x_1") == ["os=rocky9", "libc=2.28", "image=x_1"]
    assert changeable_terms("") == []


def test_wait_until_the_rebooted_node_is_back() -> None:
    clock = Clock()
    slurm = ScriptedSlurm(
        [[n("n1", "POWERING_UP", "NOT_RESPONDING")], [n("n1", "NOT_RESPONDING")], [n("n1")]]
    )
    out = wait_for_nodes(slurm, ["n1"], timeout=30, clock=clock, sleep=clock.sleep, poll=1)  # type: ignore[arg-type]
    assert out.ok and clock.t == 2


def test_wait_times_out_naming_the_node() -> None:
    clock = Clock()
    slurm = ScriptedSlurm([[n("n1", "POWERING_UP")]])
    out = wait_for_nodes(slurm, ["n1"], timeout=5, clock=clock, sleep=clock.sleep, poll=1)  # type: ignore[arg-type]
    assert not out.ok and out.message == "timed out after 5s waiting for n1"


def test_wait_stops_at_a_failure_the_server_reports() -> None:
    clock = Clock()
    server = FakeServer({"n1": {"state": "failed", "reason": "cmt: reimage to x failed at write: boom"}})
    out = wait_for_nodes(ScriptedSlurm([[n("n1", "POWERING_UP")]]), ["n1"], timeout=60, server=server,  # type: ignore[arg-type]
                         clock=clock, sleep=clock.sleep)  # fmt: skip
    assert not out.ok and out.message == "cmt: reimage to x failed at write: boom" and clock.t == 0


def test_prolog_helpers_is_one_query_when_nothing_reboots() -> None:
    slurm = ScriptedSlurm([[n("n1"), n("n2", "POWERING_UP")]])

    def no_timeout() -> float:
        raise AssertionError("the catalogue must not be read on the fast path")

    out = prolog_helpers(JobContext(1, ("n1",), "os=rocky9"), slurm, None, no_timeout)  # type: ignore[arg-type]
    assert out.ok and out.message == "no node is rebooting"


def test_prolog_helpers_refuses_a_node_back_on_its_old_image() -> None:
    clock = Clock()
    slurm = ScriptedSlurm([[n("n1", "POWERING_UP")], [n("n1", active=("os=debian12", "libc=2.36"))]])
    job = JobContext(1, ("n1",), "os=rocky9&libc=2.28")
    out = prolog_helpers(job, slurm, None, 60, clock=clock, sleep=clock.sleep)  # type: ignore[arg-type]
    assert not out.ok and out.message == "n1 came back without os=rocky9, libc=2.28"
    good = ScriptedSlurm(
        [[n("n1", "POWERING_UP")], [n("n1", active=("os=rocky9", "libc=2.17", "libc=2.28"))]]
    )
    assert prolog_helpers(job, good, None, 60, clock=clock, sleep=clock.sleep).ok  # type: ignore[arg-type]


def test_needs_image(cat: Catalogue) -> None:
    req = requirement_from_constraint("libc:2.28")
    assert needs_image(cat, req, "debian12-2026.11", "x86_64") is None  # 2.36 satisfies
    assert needs_image(cat, req, "centos7-2024.06", "x86_64") == "debian12-2026.11"  # the default fits
    assert needs_image(cat, requirement_from_constraint("os:rocky9"), None, "x86_64") == "rocky9-2026.11"
    with pytest.raises(NoMatch):
        needs_image(cat, requirement_from_constraint("os:plan9"), None, "x86_64")


def test_prolog_reimage_targets_only_nodes_that_differ_and_waits(cat: Catalogue) -> None:
    clock = Clock()
    server = FakeServer(
        {"n1": {"current_image": "rocky8-2026.10", "arch": "x86_64", "state": "ready"},
         "n2": {"current_image": "debian12-2026.11", "arch": "x86_64", "state": "ready"}},
        after_target={"n1": {"current_image": "debian12-2026.11", "arch": "x86_64", "state": "ready"}},
    )  # fmt: skip
    power = FakePower()
    slurm = ScriptedSlurm([[n("n1"), n("n2")]])
    job = JobContext(3, ("n1", "n2"), "os=debian12")
    out = prolog_reimage(job, slurm, server, power, cat, timeout=60, clock=clock, sleep=clock.sleep)  # type: ignore[arg-type]
    assert out.ok
    assert server.targets == [("n1", "debian12-2026.11")] and power.rebooted == ["n1"]


def test_prolog_reimage_fails_for_an_impossible_constraint(cat: Catalogue) -> None:
    server = FakeServer({"n1": {"current_image": "rocky8-2026.10", "arch": "x86_64"}})
    out = prolog_reimage(JobContext(3, ("n1",), "os=plan9"), ScriptedSlurm([[n("n1")]]), server, FakePower(), cat,  # type: ignore[arg-type]
                         timeout=5)  # fmt: skip
    assert not out.ok and out.message.startswith("n1: ")
    assert prolog_reimage(JobContext(3, ("n1",), "ib"), ScriptedSlurm([[n("n1")]]), server, FakePower(), cat,  # type: ignore[arg-type]
                          timeout=5).message == "every node already runs a matching image"  # fmt: skip


def test_epilog_default_returns_nodes_to_the_site_default(cat: Catalogue) -> None:
    server = FakeServer({"n1": {"current_image": "rocky8-2026.10", "arch": "x86_64"},
                         "n2": {"current_image": "debian12-2026.11", "arch": "x86_64"}})  # fmt: skip
    slurm = ScriptedSlurm([[n("n1"), n("n2")]])
    job = JobContext(4, ("n1", "n2"), "os=rocky8")
    assert epilog_default(job, slurm, server, cat, "keep") == []  # type: ignore[arg-type]
    assert epilog_default(job, slurm, server, cat, "default") == ["n1"]  # type: ignore[arg-type]
    assert server.targets == [("n1", "debian12-2026.11")]
    assert slurm.calls == [("reboot", ("n1",), "cmt: return to the default image debian12-2026.11", True)]


@dataclass
class AdminSlurm:
    job_list: list[Any] = field(default_factory=list)
    calls: list[tuple[Any, ...]] = field(default_factory=list)

    def node(self, name: str) -> NodeInfo:
        if name == "n9":
            raise NotFound("node 'n9' is not in Slurm")
        return n(name)

    def jobs(self) -> list[Any]:
        return self.job_list

    def requeue(self, job_id: int) -> None:
        self.calls.append(("requeue", job_id))

    def reboot(self, nodes: list[str], reason: str, *, asap: bool = True, nextstate: str = "resume") -> None:
        self.calls.append(("reboot", tuple(nodes), reason, asap, nextstate))


def test_admin_reimage_records_the_target_then_reboots_asap() -> None:
    server = FakeServer({})
    slurm = AdminSlurm([JobInfo(5, "j", "RUNNING", nodes=("n1",)), JobInfo(6, "k", "RUNNING", nodes=("n2",))])
    assert reimage_node(server, slurm, "n1", "rocky9-2026.11") == {"id": 1}  # type: ignore[arg-type]
    assert server.targets == [("n1", "rocky9-2026.11")]
    assert slurm.calls == [("reboot", ("n1",), "cmt: reimage to rocky9-2026.11", True, "resume")]
    slurm.calls.clear()
    reimage_node(server, slurm, "n1", "rocky9-2026.11", when="now")  # type: ignore[arg-type]
    assert slurm.calls[0] == ("requeue", 5) and len(slurm.calls) == 2
    with pytest.raises(BadInput, match="--when 'later'"):
        reimage_node(server, slurm, "n1", "x", when="later")  # type: ignore[arg-type]
    with pytest.raises(NotFound):
        reimage_node(server, slurm, "n9", "x")  # type: ignore[arg-type]
    assert len(server.targets) == 2  # nothing recorded for the unknown node
