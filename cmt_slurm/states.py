"""The provisioning state machines: one Enum and one transition table for nodes, one for deployments.

Pure: no I/O. The provisioner calls :func:`check_node_transition` / :func:`check_stage_transition` before
every change it writes, and records each change as an event row. ``docs/states.md`` is generated from
these tables by :func:`diagram` (a test keeps the file true).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import TypeVar

from .errors import Conflict

_S = TypeVar("_S", bound=enum.StrEnum)


class NodeState(enum.StrEnum):
    #: No row yet: the state a node is "in" before its first registration (the origin of its first event).
    UNKNOWN = "unknown"
    #: Registered (MACs, LLDP, DMI known), but no image of ours is known to run on it.
    DISCOVERED = "discovered"
    #: Runs ``current_image`` and reported in from it.
    READY = "ready"
    #: A deployment is active: the node is (about to be) rewritten with ``target_image``.
    REIMAGING = "reimaging"
    #: A deployment failed; Slurm drains the node with ``reason`` until an operator clears it.
    FAILED = "failed"


class Stage(enum.StrEnum):
    """A deployment's stages, in the order the reimager goes through them."""

    #: Created by ``set_target`` / ``request_features``; the node has not yet booted the reimager.
    REQUESTED = "requested"
    #: The node asked to boot the reimager while every reimage slot was taken (admission control).
    QUEUED = "queued"
    #: The live reimager booted with this deployment's token (reimage mode: it knows its name).
    LIVE = "live"
    #: The live env booted in discovery mode, named itself through LLDP and picked up this deployment.
    IDENTIFY = "identify"
    TRANSFER = "transfer"
    VERIFY = "verify"
    WRITE = "write"
    GROW = "grow"
    IDENTITY = "identity"
    KEXEC = "kexec"
    BOOT = "boot"
    DONE = "done"
    FAILED = "failed"


# Node edges. Every edge carries the reason it exists; anything not listed is refused.
NODE_TRANSITIONS: Mapping[NodeState, Mapping[NodeState, str]] = {
    NodeState.UNKNOWN: {
        NodeState.DISCOVERED: "first registration: MACs and LLDP/DMI identity recorded",
    },
    NodeState.DISCOVERED: {
        NodeState.REIMAGING: "a target image was set (admin) or requested (Slurm helper)",
        NodeState.READY: "the node reported in from a catalogue image it already runs (adopted)",
    },
    NodeState.READY: {
        NodeState.REIMAGING: "a different image was set or requested",
    },
    NodeState.REIMAGING: {
        NodeState.READY: "deployment done (new OS reported in), or cancelled before the node booted it",
        NodeState.FAILED: "the deployment failed, timed out, or the node network-booted mid-write",
    },
    NodeState.FAILED: {
        NodeState.REIMAGING: "an operator set a target again: retry the reimage",
        NodeState.READY: "an operator cleared the failure; the node still runs current_image",
        NodeState.DISCOVERED: "an operator cleared the failure; no image is known to be intact",
    },
}

#: Stages a deployment is working in (``failed`` is reachable from each of them).
ACTIVE_STAGES: frozenset[Stage] = frozenset(Stage) - {Stage.DONE, Stage.FAILED}

# Deployment edges, besides "any active stage -> failed" which is added below.
_STAGE_EDGES: Mapping[Stage, Mapping[Stage, str]] = {
    Stage.REQUESTED: {
        Stage.QUEUED: "boot script asked for while all reimage slots are busy (admission control)",
        Stage.LIVE: "the reimager booted (iPXE or kexec fast path) and reported in",
        Stage.IDENTIFY: "a discovery-mode live env registered and picked this deployment up",
    },
    Stage.QUEUED: {
        Stage.LIVE: "a slot freed; the node booted the reimager",
        Stage.IDENTIFY: "a slot freed; a discovery-mode live env picked this deployment up",
    },
    Stage.LIVE: {Stage.TRANSFER: "plan fetched, download started (reimage mode knows its name)"},
    Stage.IDENTIFY: {Stage.TRANSFER: "named through LLDP, plan fetched, download started"},
    Stage.TRANSFER: {Stage.VERIFY: "all bytes received; checking the declared sha256"},
    Stage.VERIFY: {Stage.WRITE: "digest matches; the old disk is overwritten only from here on"},
    Stage.WRITE: {Stage.GROW: "image written; partition table re-read and GPT fixed"},
    Stage.GROW: {Stage.IDENTITY: "root partition and filesystem grown to the disk"},
    Stage.IDENTITY: {
        Stage.KEXEC: "hostname and /etc/cmt/node.json written; kernel loaded for kexec",
        Stage.BOOT: "kexec not possible here: rebooting through firmware into the new disk",
    },
    Stage.KEXEC: {Stage.BOOT: "kexec issued; the new OS is booting"},
    Stage.BOOT: {Stage.DONE: "the new OS reported in (node_ready) with the target image"},
    Stage.DONE: {},
    Stage.FAILED: {},
}


def _with_failed(edges: Mapping[Stage, Mapping[Stage, str]]) -> dict[Stage, dict[Stage, str]]:
    table = {stage: dict(targets) for stage, targets in edges.items()}
    for stage in ACTIVE_STAGES:
        # Any working stage can fail: the agent reports it, the token expires, or an operator aborts.
        table[stage].setdefault(Stage.FAILED, "error reported, token expired, or aborted")
    return table


STAGE_TRANSITIONS: Mapping[Stage, Mapping[Stage, str]] = _with_failed(_STAGE_EDGES)

#: Stages that hold an admission slot (the image source's bandwidth is the limit).
SLOT_STAGES: frozenset[Stage] = frozenset(
    {Stage.LIVE, Stage.IDENTIFY, Stage.TRANSFER, Stage.VERIFY, Stage.WRITE, Stage.GROW}
)


def _allowed(targets: Mapping[_S, str]) -> str:
    return ", ".join(str(t) for t in targets) or "none (terminal)"


def check_node_transition(current: NodeState, target: NodeState) -> str:
    """Return the edge's reason, or raise.

    :raises Conflict: ``current -> target`` is not in :data:`NODE_TRANSITIONS`.
    """
    targets = NODE_TRANSITIONS[current]
    if target not in targets:
        raise Conflict(
            f"node state {current} -> {target} is not allowed",
            hint=f"from {current} a node can go to: {_allowed(targets)}",
            details={"from": str(current), "to": str(target), "allowed": [str(t) for t in targets]},
        )
    return targets[target]


def check_stage_transition(current: Stage, target: Stage) -> str:
    """Return the edge's reason, or raise.

    :raises Conflict: ``current -> target`` is not in :data:`STAGE_TRANSITIONS` (out-of-order report).
    """
    targets = STAGE_TRANSITIONS[current]
    if target not in targets:
        raise Conflict(
            f"deployment stage {current} -> {target} is not allowed",
            hint=f"from {current} the next stage can be: {_allowed(targets)}",
            details={"from": str(current), "to": str(target), "allowed": [str(t) for t in targets]},
        )
    return targets[target]


def _mermaid(title: str, table: Mapping[_S, Mapping[_S, str]], start: str) -> list[str]:
    lines = [f"### {title}", "", "```mermaid", "stateDiagram-v2", f"    [*] --> {start}"]
    for source, targets in table.items():
        for target, why in targets.items():
            lines.append(f"    {source} --> {target}: {why.replace(':', ' -').replace(';', ',')}")
        if not targets:
            lines.append(f"    {source} --> [*]")
    lines += ["```", ""]
    return lines


def diagram() -> str:
    """Both machines as Markdown with Mermaid state diagrams (the content of ``docs/states.md``)."""
    lines = [
        "# Provisioning states",
        "",
        "Generated from `cmt_slurm/states.py` by `states.diagram()`; a test fails when this file and the",
        "tables differ. Regenerate it with",
        "`python -m cmt_slurm.states > docs/states.md`.",
        "",
    ]
    lines += _mermaid("Node states", NODE_TRANSITIONS, str(NodeState.UNKNOWN))
    # The "-> failed" edges of every active stage would hide the main path; they are summarised instead.
    main: dict[Stage, dict[Stage, str]] = {
        s: {t: why for t, why in targets.items() if t is not Stage.FAILED}
        for s, targets in STAGE_TRANSITIONS.items()
    }
    lines += _mermaid("Deployment stages", main, str(Stage.REQUESTED))
    active = ", ".join(str(s) for s in Stage if s in ACTIVE_STAGES)
    lines += [f"Every active stage ({active}) can also go to `failed`.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    print(diagram(), end="")
