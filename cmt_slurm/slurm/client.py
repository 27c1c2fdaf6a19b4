"""The Slurm port: a narrow ``SlurmClient`` protocol and its implementation over the Slurm 22.05 CLI.

Queries use ``sinfo --json`` / ``squeue --json`` (openapi v0.0.38 field names; 22.05 has no
``scontrol --json``), updates use ``scontrol update`` / ``scontrol reboot``. Commands are argv lists run
through a ``CommandRunner``, never a shell, so unit tests replay recorded output and a pyslurm backend
(for sites on Slurm 25.11) can implement the same protocol.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..errors import BackendError, BadInput, NotFound
from ..runner import TIMEOUT_RC, CommandResult, CommandRunner, OutputCallback, SubprocessRunner
from .hostlist import compress_hostlist, expand_hostlist

#: Base node states as ``sinfo --json`` spells them (lower case) in 22.05.
DOWN_STATES = frozenset({"down", "unknown", "future"})


@dataclass
class PrefixedRunner:
    """Runs every command behind ``prefix`` (e.g. ``nsenter --net=...`` to reach a test cluster)."""

    inner: CommandRunner
    prefix: Sequence[str] = ()
    env: Mapping[str, str] | None = None

    def run(
        self,
        argv: Sequence[str],
        *,
        check: bool = True,
        timeout: float | None = 600.0,
        input_text: str | None = None,
        env: Mapping[str, str] | None = None,
        on_output: OutputCallback | None = None,
    ) -> CommandResult:
        merged = {**(self.env or {}), **(env or {})} or None
        res = self.inner.run(
            [*self.prefix, *argv], check=check, timeout=timeout, input_text=input_text, env=merged,
            on_output=on_output,
        )  # fmt: skip
        return CommandResult(tuple(argv), res.returncode, res.stdout, res.stderr)


@dataclass(frozen=True)
class NodeInfo:
    name: str
    #: Base state, lower case: idle, allocated, mixed, down, ...
    state: str
    #: Upper-case flags: DRAIN, REBOOT_REQUESTED, REBOOT_ISSUED, POWERING_UP, NOT_RESPONDING, ...
    flags: frozenset[str] = frozenset()
    features: tuple[str, ...] = ()
    active_features: tuple[str, ...] = ()
    reason: str = ""
    boot_time: int = 0
    slurmd_start_time: int = 0

    @property
    def drained(self) -> bool:
        return "DRAIN" in self.flags

    @property
    def down(self) -> bool:
        return self.state in DOWN_STATES

    @property
    def rebooting(self) -> bool:
        return bool(self.flags & {"REBOOT_REQUESTED", "REBOOT_ISSUED", "POWERING_UP"})

    @property
    def usable(self) -> bool:
        """Up, not drained, not rebooting: can take a job now."""
        return not (self.down or self.drained or self.rebooting or "NOT_RESPONDING" in self.flags)


@dataclass(frozen=True)
class JobInfo:
    job_id: int
    name: str
    #: Upper case: PENDING, CONFIGURING, RUNNING, COMPLETED, FAILED, CANCELLED, ...
    state: str
    constraint: str = ""
    nodes: tuple[str, ...] = ()
    reason: str = ""
    restart_count: int = 0
    submit_time: int = 0
    start_time: int = 0
    flags: frozenset[str] = field(default_factory=frozenset)


class SlurmClient(Protocol):
    """What cmt needs from Slurm. Every method raises ``BackendError`` when Slurm refuses or fails."""

    def nodes(self) -> list[NodeInfo]: ...

    def node(self, name: str) -> NodeInfo:
        """:raises NotFound: no such node in slurm.conf."""
        ...

    def jobs(self) -> list[JobInfo]: ...

    def drain(self, node: str, reason: str) -> None: ...

    def resume(self, node: str) -> None: ...

    def reboot(
        self, nodes: Sequence[str], reason: str, *, asap: bool = True, nextstate: str = "resume"
    ) -> None: ...

    def update_features(
        self, node: str, *, available: Sequence[str] | None = None, active: Sequence[str] | None = None
    ) -> None: ...

    def requeue(self, job_id: int) -> None: ...

    def release_begin_time(self, job_id: int) -> None:
        """Clear the BeginTime hold Slurm puts on a requeued job, so it is scheduled at once."""
        ...


def _split_features(value: Any) -> tuple[str, ...]:
    if not value:
        return ()
    if isinstance(value, list):
        return tuple(str(v) for v in value if v)
    return tuple(f for f in str(value).split(",") if f)


def parse_nodes(doc: Mapping[str, Any]) -> list[NodeInfo]:
    """Nodes from ``sinfo --json`` (22.05, openapi v0.0.38)."""
    out = []
    for n in doc.get("nodes", []):
        out.append(
            NodeInfo(
                name=str(n["name"]),
                state=str(n.get("state", "unknown")).lower(),
                flags=frozenset(str(f).upper() for f in n.get("state_flags") or ()),
                features=_split_features(n.get("features")),
                active_features=_split_features(n.get("active_features")),
                reason=str(n.get("reason") or ""),
                boot_time=int(n.get("boot_time") or 0),
                slurmd_start_time=int(n.get("slurmd_start_time") or 0),
            )
        )
    return out


def parse_jobs(doc: Mapping[str, Any]) -> list[JobInfo]:
    """Jobs from ``squeue --json`` (22.05, openapi v0.0.38)."""
    out = []
    for j in doc.get("jobs", []):
        out.append(
            JobInfo(
                job_id=int(j["job_id"]),
                name=str(j.get("name") or ""),
                state=str(j.get("job_state", "")).upper(),
                constraint=str(j.get("features") or ""),
                nodes=tuple(expand_hostlist(str(j.get("nodes") or ""))),
                reason="" if j.get("state_reason") in (None, "None") else str(j["state_reason"]),
                restart_count=int(j.get("restart_cnt") or 0),
                submit_time=int(j.get("submit_time") or 0),
                start_time=int(j.get("start_time") or 0),
                flags=frozenset(str(f) for f in j.get("flags") or ()),
            )
        )
    return out


def _check_value(what: str, value: str) -> str:
    # scontrol splits its own arguments on '=' and spaces inside one argv element are kept, but a
    # newline or NUL would end up in slurmctld's state and logs.
    if not value or any(c in value for c in "\n\r\0"):
        raise BadInput(f"{what} {value!r} is empty or holds a control character")
    return value


@dataclass
class SlurmCli:
    """``SlurmClient`` over ``sinfo``/``squeue``/``scontrol``."""

    runner: CommandRunner = field(default_factory=SubprocessRunner)
    timeout: float = 30.0

    def _run(self, argv: Sequence[str]) -> str:
        res = self.runner.run(argv, check=False, timeout=self.timeout)
        if res.returncode == TIMEOUT_RC:
            raise BackendError(
                f"{' '.join(argv)}: no answer within {self.timeout:.0f}s",
                hint="check that slurmctld is up (scontrol ping)",
                details={"argv": list(argv)},
            )
        if res.returncode == 127 and "command not found" in res.stderr:
            raise BackendError(
                f"{argv[0]}: command not found", hint="install the Slurm client (slurm-client) on this host"
            )
        if res.returncode != 0:
            err = res.stderr.strip() or res.stdout.strip() or "(no output)"
            raise BackendError(
                f"{' '.join(argv)}: exited {res.returncode}: {err.splitlines()[-1]}",
                hint="check slurmctld (scontrol ping) and its log",
                details={"argv": list(argv), "returncode": res.returncode, "stderr": res.stderr},
            )
        return res.stdout

    def _json(self, argv: Sequence[str]) -> dict[str, Any]:
        out = self._run(argv)
        try:
            doc = json.loads(out)
        except json.JSONDecodeError as exc:
            raise BackendError(
                f"{' '.join(argv)}: output is not JSON ({exc.msg} at {exc.pos})",
                hint="this needs Slurm 22.05 or later (sinfo/squeue --json)",
            ) from None
        if not isinstance(doc, dict):
            raise BackendError(f"{' '.join(argv)}: output is not a JSON object")
        errors = [e for e in doc.get("errors") or () if e]
        if errors:
            raise BackendError(f"{' '.join(argv)}: {errors[0]}", details={"errors": errors})
        return doc

    def nodes(self) -> list[NodeInfo]:
        return parse_nodes(self._json(["sinfo", "--json"]))

    def node(self, name: str) -> NodeInfo:
        for n in self.nodes():
            if n.name == name:
                return n
        raise NotFound(f"node {name!r} is not in Slurm", hint="check the NodeName lines of slurm.conf")

    def jobs(self) -> list[JobInfo]:
        return parse_jobs(self._json(["squeue", "--json"]))

    def drain(self, node: str, reason: str) -> None:
        self._run(
            ["scontrol", "update", f"NodeName={_check_value('node', node)}", "State=DRAIN",
             f"Reason={_check_value('reason', reason)}"]
        )  # fmt: skip

    def resume(self, node: str) -> None:
        self._run(["scontrol", "update", f"NodeName={_check_value('node', node)}", "State=RESUME"])

    def reboot(
        self, nodes: Sequence[str], reason: str, *, asap: bool = True, nextstate: str = "resume"
    ) -> None:
        if nextstate not in ("resume", "down"):
            raise BadInput(f"nextstate {nextstate!r} is not resume or down")
        if not nodes:
            raise BadInput("reboot: no node given")
        argv = ["scontrol", "reboot", *(["ASAP"] if asap else []), f"nextstate={nextstate}"]
        argv += [f"reason={_check_value('reason', reason)}", compress_hostlist(nodes)]
        self._run(argv)

    def update_features(
        self, node: str, *, available: Sequence[str] | None = None, active: Sequence[str] | None = None
    ) -> None:
        argv = ["scontrol", "update", f"NodeName={_check_value('node', node)}"]
        if available is not None:
            argv.append(f"AvailableFeatures={','.join(available)}")
        if active is not None:
            argv.append(f"ActiveFeatures={','.join(active)}")
        if len(argv) == 3:
            return
        self._run(argv)

    def requeue(self, job_id: int) -> None:
        self._run(["scontrol", "requeue", str(int(job_id))])

    def release_begin_time(self, job_id: int) -> None:
        self._run(["scontrol", "update", f"JobId={int(job_id)}", "StartTime=now"])

    def reconfigure(self) -> None:
        self._run(["scontrol", "reconfigure"])
