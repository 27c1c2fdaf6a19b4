"""How the controller makes a node reboot in prolog mode (no RebootProgram path for an allocated node).

``CMT_NODE_POWER`` picks: ``ssh`` (default: ``ssh -o BatchMode=yes NODE <cmt-node> reboot``, the node's
RebootProgram logic) or ``lab-nsenter`` (the test cluster's namespace nodes: run ``cmt-node reboot``
inside the node's namespaces with its slurmd's environment — the lab's stand-in for a BMC).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ..errors import BackendError, ConfigError
from ..runner import CommandRunner, SubprocessRunner


@dataclass
class SshPower:
    node_command: str = "/usr/local/bin/cmt-node"
    runner: CommandRunner | None = None

    def reboot(self, node: str) -> None:
        runner = self.runner or SubprocessRunner()
        res = runner.run(
            ["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10", node, self.node_command, "reboot"],
            check=False, timeout=60,
        )  # fmt: skip
        if not res.ok:
            raise BackendError(
                f"ssh {node} cmt-node reboot: {res.last_error_line()}", hint="check root ssh keys"
            )


@dataclass
class LabNsenterPower:
    #: ``{node}`` is replaced by the node name: the slurmd pid file of that namespace node.
    pidfile_pattern: str
    node_command: str
    runner: CommandRunner | None = None

    def reboot(self, node: str) -> None:
        pidfile = Path(self.pidfile_pattern.replace("{node}", node))
        try:
            pid = int(pidfile.read_text().strip())
            raw = Path(f"/proc/{pid}/environ").read_bytes()
        except (OSError, ValueError) as exc:
            raise BackendError(f"lab node {node}: no running slurmd ({exc})") from None
        env = dict(e.split("=", 1) for e in raw.decode(errors="replace").split("\0") if "=" in e)
        runner = self.runner or SubprocessRunner()
        res = runner.run(
            ["nsenter", "-t", str(pid), "-m", "-u", "--", self.node_command, "reboot"],
            check=False, timeout=30, env=env,
        )  # fmt: skip
        if not res.ok:
            raise BackendError(f"lab node {node}: cmt-node reboot: {res.last_error_line()}")


def node_power_from_env(
    node_command: str, env: Mapping[str, str] | None = None
) -> SshPower | LabNsenterPower:
    env = os.environ if env is None else env
    kind = env.get("CMT_NODE_POWER") or "ssh"
    if kind == "ssh":
        return SshPower(node_command)
    if kind == "lab-nsenter":
        pattern = env.get("CMT_LAB_PIDFILE_PATTERN")
        if not pattern:
            raise ConfigError(
                "CMT_NODE_POWER=lab-nsenter needs CMT_LAB_PIDFILE_PATTERN (…/slurmd-{node}.pid)"
            )
        return LabNsenterPower(pattern, node_command)
    raise ConfigError(f"CMT_NODE_POWER: {kind!r} is not ssh or lab-nsenter")
