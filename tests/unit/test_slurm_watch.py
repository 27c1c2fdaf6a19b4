from dataclasses import dataclass, field
from typing import Any

import pytest

from cmt_slurm.errors import BackendError
from cmt_slurm.slurm.client import JobInfo, NodeInfo
from cmt_slurm.slurm.watch import Action, Watcher, plan_actions

REASON = "cmt: reimage to debian13-2026.11 failed at write: checksum mismatch"


def node(name: str, *flags: str, reason: str = "") -> NodeInfo:
    return NodeInfo(name, "idle", frozenset(flags), reason=reason)


def srv(name: str, state: str = "ready", reason: str | None = None) -> dict[str, Any]:
    return {"name": name, "state": state, "reason": reason}


@pytest.mark.parametrize(
    ("server", "slurm", "jobs", "ours", "want"),
    [
        # a failed node is drained with the server's reason, its waiting job requeued
        ([srv("n1", "failed", REASON)], [node("n1")], [JobInfo(7, "j", "CONFIGURING", nodes=("n1",))], set(),
         [Action("drain", "n1", REASON), Action("requeue", "n1", job=7)]),
        # already drained with that reason: nothing to do; running jobs elsewhere untouched
        ([srv("n1", "failed", REASON)], [node("n1", "DRAIN", reason=REASON)],
         [JobInfo(8, "j", "RUNNING", nodes=("n2",))], {"n1"}, []),
        # cleared on the server: resume what we drained
        ([srv("n1", "ready")], [node("n1", "DRAIN", reason=REASON)], [], {"n1"}, [Action("resume", "n1")]),
        # an admin's own drain is never resumed by us, nor a pre-provisioning reboot's
        ([srv("n1", "ready")], [node("n1", "DRAIN", reason="bad DIMM")], [], set(), []),
        ([srv("n1", "reimaging")], [node("n1", "DRAIN", "REBOOT_REQUESTED", reason="cmt: reimage to rocky9")],
         [], set(), []),
        # resumed in Slurm by an admin while still failed on the server: tell the server
        ([srv("n1", "failed", REASON)], [node("n1")], [], {"n1"}, [Action("clear", "n1")]),
        # a server reason without the prefix gets it; nodes Slurm does not know are ignored
        ([srv("n1", "failed", "disk gone"), srv("n9", "failed", "x")], [node("n1")], [], set(),
         [Action("drain", "n1", "cmt: disk gone")]),
    ],
)  # fmt: skip
def test_plan_actions(
    server: list[dict[str, Any]],
    slurm: list[NodeInfo],
    jobs: list[JobInfo],
    ours: set[str],
    want: list[Action],
) -> None:
    assert plan_actions(server, slurm, jobs, ours) == want


@dataclass
class FakeSlurm:
    node_list: list[NodeInfo]
    job_list: list[JobInfo] = field(default_factory=list)
    calls: list[tuple[Any, ...]] = field(default_factory=list)
    requeue_error: str | None = None

    def nodes(self) -> list[NodeInfo]:
        return self.node_list

    def jobs(self) -> list[JobInfo]:
        return self.job_list

    def drain(self, node: str, reason: str) -> None:
        self.calls.append(("drain", node, reason))

    def resume(self, node: str) -> None:
        self.calls.append(("resume", node))

    def requeue(self, job_id: int) -> None:
        self.calls.append(("requeue", job_id))
        if self.requeue_error:
            raise BackendError(self.requeue_error)

    def release_begin_time(self, job_id: int) -> None:
        self.calls.append(("release", job_id))


@dataclass
class FakeServer:
    node_list: list[dict[str, Any]]
    cleared: list[str] = field(default_factory=list)
    broken: bool = False

    def nodes(self) -> list[dict[str, Any]]:
        if self.broken:
            raise BackendError("cannot reach the boot server")
        return self.node_list

    def drain_cleared(self, name: str) -> dict[str, Any]:
        self.cleared.append(name)
        return {}


def test_requeue_of_a_job_slurm_already_requeued_still_lifts_the_hold() -> None:
    slurm = FakeSlurm([node("n1")], [JobInfo(7, "j", "CONFIGURING", nodes=("n1",))],
                      requeue_error="scontrol requeue 7: exited 1: Job is pending execution for job 7")  # fmt: skip
    logs: list[str] = []
    w = Watcher(slurm, FakeServer([srv("n1", "failed", REASON)]), log=logs.append)  # type: ignore[arg-type]
    w.tick()
    assert slurm.calls == [("drain", "n1", REASON), ("requeue", 7), ("release", 7)]
    assert w.drained_by_us == {"n1"}
    assert logs[-1] == "requeued job 7 (was waiting for n1), hold lifted"


def test_one_failing_action_does_not_stop_the_others() -> None:
    slurm = FakeSlurm([node("n1"), node("n2")], [JobInfo(7, "j", "CONFIGURING", nodes=("n1",))],
                      requeue_error="Invalid job id")  # fmt: skip
    logs: list[str] = []
    server = FakeServer([srv("n1", "failed", REASON), srv("n2", "failed", REASON)])
    Watcher(slurm, server, log=logs.append).tick()  # type: ignore[arg-type]
    assert ("drain", "n2", REASON) in slurm.calls
    assert "requeue n1: Invalid job id" in logs


def test_admin_resume_in_slurm_clears_the_server() -> None:
    server = FakeServer([srv("n1", "failed", REASON)])
    w = Watcher(FakeSlurm([node("n1")]), server, log=lambda m: None, drained_by_us={"n1"})  # type: ignore[arg-type]
    w.tick()
    assert server.cleared == ["n1"] and w.drained_by_us == set()


def test_run_survives_an_unreachable_server() -> None:
    logs: list[str] = []
    w = Watcher(FakeSlurm([node("n1")]), FakeServer([], broken=True), log=logs.append)  # type: ignore[arg-type]
    w.run(0.1, passes=2, sleep=lambda s: None)
    assert logs == ["pass failed: cannot reach the boot server"] * 2
