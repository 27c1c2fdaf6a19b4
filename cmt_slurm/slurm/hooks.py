"""Controller-side hooks: PrologSlurmctld (``cmt slurm prolog-ctld``), EpilogSlurmctld (``cmt slurm epilog``).

PrologSlurmctld gets ``SLURM_JOB_ID``, ``SLURM_JOB_NODELIST`` and ``SLURM_JOB_CONSTRAINTS`` (no
``SLURM_CONF``: the generated wrapper exports it when slurm.conf is not in the default place).

- helpers mode: Slurm reboots the nodes itself; the prolog only *waits* until they are back (or the
  server reports one failed). Measured on 22.05: a CONFIGURING job whose nodes are back starts at
  slurmctld's next 30 s pass, but at once when its PrologSlurmctld ends — so this cuts the 0–30 s wait.
- prolog mode (no node_features plugin): for each allocated node not already satisfying the job, set
  the target on the server, have the node rebooted (``NodePower``), and wait until it is ready or failed.

Exit 0 only when every node runs a matching image; otherwise Slurm requeues the job (the watcher drains
the failed node and lifts the requeue hold).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ..catalogue import Catalogue, satisfies, select_image
from ..constraints import Requirement, requirement_from_constraint
from ..errors import BadInput, CmtError, NoMatch
from .client import SlurmClient
from .hostlist import expand_hostlist


class ServerApi(Protocol):
    def node(self, name: str) -> dict[str, Any]: ...

    def set_target(self, name: str, image: str) -> dict[str, Any]: ...


class NodePower(Protocol):
    def reboot(self, node: str) -> None:
        """Make ``node`` reboot now (BMC power cycle, or an ssh to ``cmt-node reboot``)."""
        ...


@dataclass(frozen=True)
class JobContext:
    job_id: int
    nodes: tuple[str, ...]
    constraint: str

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> JobContext:
        """:raises BadInput: not run by slurmctld (no SLURM_JOB_ID / node list)."""
        job = env.get("SLURM_JOB_ID", "")
        if not job.isdigit():
            raise BadInput(
                "SLURM_JOB_ID is not set: this runs as slurmctld's PrologSlurmctld/EpilogSlurmctld",
                hint="set it (and SLURM_JOB_NODELIST, SLURM_JOB_CONSTRAINTS) to run it by hand",
            )
        nodes = tuple(expand_hostlist(env.get("SLURM_JOB_NODELIST", "")))
        return cls(int(job), nodes, env.get("SLURM_JOB_CONSTRAINTS", "").strip())


@dataclass(frozen=True)
class Outcome:
    ok: bool
    message: str


def _server_failure(server: ServerApi | None, names: Sequence[str]) -> str | None:
    if server is None:
        return None
    for name in names:
        try:
            info = server.node(name)
        except CmtError:
            continue  # the server's view is advisory here; Slurm's is authoritative
        if info.get("state") == "failed":
            return str(info.get("reason") or f"{name}: reimage failed")
    return None


def wait_for_nodes(
    slurm: SlurmClient,
    names: Sequence[str],
    *,
    timeout: float,
    server: ServerApi | None = None,
    ready: Callable[[str], bool] | None = None,
    poll: float = 0.5,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Outcome:
    """Wait until no node of ``names`` is rebooting in Slurm (and ``ready(name)`` holds, if given)."""
    deadline = clock() + timeout
    while True:
        failure = _server_failure(server, names)
        if failure:
            return Outcome(False, failure)
        infos = {n.name: n for n in slurm.nodes()}
        busy = {n for n, i in infos.items() if i.rebooting or "NOT_RESPONDING" in i.flags or i.down}
        waiting = [n for n in names if n in busy or (ready is not None and not ready(n))]
        if not waiting:
            return Outcome(True, "all nodes are up")
        if clock() >= deadline:
            return Outcome(False, f"timed out after {timeout:.0f}s waiting for {', '.join(waiting)}")
        sleep(poll)


def changeable_terms(constraint: str) -> list[str]:
    """The ``os=``/``libc=``/``image=`` terms of an (already rewritten, '&'-joined) constraint."""
    terms = [t.strip() for t in constraint.replace(",", "&").split("&")]
    return [t for t in terms if t.startswith(("os=", "libc=", "image="))]


def prolog_helpers(
    job: JobContext,
    slurm: SlurmClient,
    server: ServerApi | None,
    timeout: float | Callable[[], float],
    **kw: Any,
) -> Outcome:
    """helpers mode: Slurm reboots; hold the job until its nodes are back, so it starts at once; then
    check what the nodes' helpers report. Slurm 22.05 sets ActiveFeatures to the target before the
    reboot and starts the job even if the node came back on its old image: that must not happen."""
    infos = {n.name: n for n in slurm.nodes()}
    if not any(infos[n].rebooting for n in job.nodes if n in infos):
        return Outcome(True, "no node is rebooting")  # the common case: costs one sinfo
    wait = timeout() if callable(timeout) else timeout
    out = wait_for_nodes(slurm, job.nodes, timeout=wait, server=server, **kw)
    if not out.ok:
        return out
    wanted = changeable_terms(job.constraint)
    for node in slurm.nodes():
        missing = [t for t in wanted if node.name in job.nodes and t not in node.active_features]
        if missing:
            return Outcome(False, f"{node.name} came back without {', '.join(missing)}")
    return out


def needs_image(catalogue: Catalogue, req: Requirement, current: str | None, arch: str) -> str | None:
    """The image a node must be reimaged to, or None when what it runs already satisfies ``req``."""
    image = catalogue.get(current) if current else None
    if image is not None and satisfies(image, req):
        return None
    return select_image(catalogue, req, arch).name


def prolog_reimage(
    job: JobContext,
    slurm: SlurmClient,
    server: ServerApi,
    power: NodePower,
    catalogue: Catalogue,
    *,
    timeout: float,
    **kw: Any,
) -> Outcome:
    """prolog mode: reimage the job's nodes that do not satisfy it, then wait for them."""
    try:
        req = requirement_from_constraint(job.constraint) if job.constraint else None
    except BadInput as exc:
        return Outcome(False, f"constraint {job.constraint!r}: {exc.message}")
    if req is None or req.is_empty:
        return Outcome(True, "the job asks for no image")
    targets: dict[str, str] = {}
    for name in job.nodes:
        info = server.node(name)
        try:
            image = needs_image(catalogue, req, info.get("current_image"), str(info.get("arch") or "x86_64"))
        except NoMatch as exc:
            return Outcome(False, f"{name}: {exc.message}")
        if image is not None:
            targets[name] = image
    if not targets:
        return Outcome(True, "every node already runs a matching image")
    for name, image in targets.items():
        server.set_target(name, image)
        power.reboot(name)

    def ready(name: str) -> bool:
        if name not in targets:
            return True
        info = server.node(name)
        return bool(info.get("state") == "ready" and info.get("current_image") == targets[name])

    return wait_for_nodes(slurm, list(targets), timeout=timeout, server=server, ready=ready, **kw)


def epilog_default(
    job: JobContext, slurm: SlurmClient, server: ServerApi, catalogue: Catalogue, policy: str
) -> list[str]:
    """``default`` policy: nodes of the finished job not on the site default image are set to return
    to it, rebooted by Slurm once idle (``scontrol reboot ASAP``). Returns the nodes it acted on."""
    if policy != "default":
        return []
    acted = []
    for name in job.nodes:
        info = server.node(name)
        default = catalogue.default(str(info.get("arch") or "x86_64"))
        if default is None or info.get("current_image") in (None, default.name):
            continue
        server.set_target(name, default.name)
        slurm.reboot([name], f"cmt: return to the default image {default.name}", asap=True)
        acted.append(name)
    return acted
