"""The drain watcher (``cmt slurm watch``): the boot server's failures, the Slurm way.

A node the server marks ``failed`` is drained in Slurm with the server's reason (``cmt: reimage to
debian13-2026.11 failed at write: checksum mismatch``), and the jobs that were waiting for it
(CONFIGURING) are requeued at once, with Slurm's requeue hold lifted, so they run elsewhere instead of
waiting for ResumeTimeout and then 121 s more. When the failure is cleared (``cmt node clear`` →
server no longer ``failed``), the node is resumed; drains with other reasons (an admin's, or the
``cmt: reimage to X`` of a pre-provisioning reboot) are never touched. An admin resuming the node in
Slurm first counts as clearing it: the watcher tells the server.

One ``tick()`` is one pass over both sides; ``run()`` repeats it. Pure decisions (``plan_actions``) are
separate from the calls, so they are table-tested without Slurm or a server.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..errors import CmtError
from .client import JobInfo, NodeInfo, SlurmClient

#: Every reason the watcher sets starts so; it only ever resumes nodes carrying one.
REASON_PREFIX = "cmt: "


class ServerNodes(Protocol):
    def nodes(self) -> list[dict[str, Any]]: ...

    def drain_cleared(self, name: str) -> dict[str, Any]: ...


def is_failure_reason(reason: str) -> bool:
    return reason.startswith(REASON_PREFIX) and " failed" in reason


@dataclass(frozen=True)
class Action:
    kind: str  # drain | resume | requeue | clear
    node: str
    reason: str = ""
    job: int = 0


def plan_actions(
    server_nodes: Iterable[Mapping[str, Any]],
    slurm_nodes: Iterable[NodeInfo],
    jobs: Iterable[JobInfo],
    drained_by_us: set[str],
) -> list[Action]:
    """What to do so that Slurm agrees with the server. Nodes Slurm does not know are ignored."""
    slurm = {n.name: n for n in slurm_nodes}
    waiting: dict[str, list[int]] = {}
    for job in jobs:
        if job.state == "CONFIGURING":
            for n in job.nodes:
                waiting.setdefault(n, []).append(job.job_id)
    actions: list[Action] = []
    for srv in server_nodes:
        name = str(srv.get("name") or "")
        sn = slurm.get(name)
        if sn is None:
            continue
        failed = srv.get("state") == "failed"
        # Only failure drains are ours to lift: "cmt: reimage to X" is an admin's ASAP reboot in progress.
        ours = sn.drained and is_failure_reason(sn.reason)
        if failed:
            reason = str(srv.get("reason") or f"{REASON_PREFIX}reimage failed (see cmt node show {name})")
            if not reason.startswith(REASON_PREFIX):
                reason = REASON_PREFIX + reason
            if name in drained_by_us and not sn.drained:
                actions.append(Action("clear", name))  # an admin resumed it in Slurm
                continue
            if not (sn.drained and sn.reason == reason):
                actions.append(Action("drain", name, reason))
            actions.extend(Action("requeue", name, job=j) for j in waiting.get(name, ()))
        elif ours:
            actions.append(Action("resume", name))
    return actions


@dataclass
class Watcher:
    slurm: SlurmClient
    server: ServerNodes
    log: Callable[[str], None] = print
    drained_by_us: set[str] = field(default_factory=set)

    def tick(self) -> list[Action]:
        actions = plan_actions(self.server.nodes(), self.slurm.nodes(), self.slurm.jobs(), self.drained_by_us)
        for a in actions:
            try:
                self._apply(a)
            except CmtError as exc:  # one node's trouble must not stop the others
                self.log(f"{a.kind} {a.node}: {exc.message}")
        return actions

    def _apply(self, a: Action) -> None:
        if a.kind == "drain":
            self.slurm.drain(a.node, a.reason)
            self.drained_by_us.add(a.node)
            self.log(f"drained {a.node}: {a.reason}")
        elif a.kind == "requeue":
            # Draining a POWERING_UP node already makes 22.05 requeue its CONFIGURING jobs ("Job is
            # pending execution" then); either way the requeue's BeginTime hold (now+121 s) is lifted.
            try:
                self.slurm.requeue(a.job)
            except CmtError as exc:
                if "pending" not in exc.message.lower():
                    raise
            self.slurm.release_begin_time(a.job)
            self.log(f"requeued job {a.job} (was waiting for {a.node}), hold lifted")
        elif a.kind == "resume":
            self.slurm.resume(a.node)
            self.drained_by_us.discard(a.node)
            self.log(f"resumed {a.node}: the server no longer reports it failed")
        elif a.kind == "clear":
            self.server.drain_cleared(a.node)
            self.drained_by_us.discard(a.node)
            self.log(f"{a.node} was resumed in Slurm: told the server the failure is cleared")

    def run(
        self,
        interval: float = 5.0,
        *,
        passes: int | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """Tick every ``interval`` seconds, ``passes`` times (None: forever); errors are logged, not fatal."""
        done = 0
        while passes is None or done < passes:
            try:
                self.tick()
            except CmtError as exc:
                self.log(f"pass failed: {exc.message}")
            done += 1
            if passes is None or done < passes:
                sleep(interval)
