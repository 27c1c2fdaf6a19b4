"""Write the node's identity into the freshly written root (mounted at ``root``).

Hostname, ``/etc/hosts``, a fresh machine-id (every node its own, never the image's), ``/etc/cmt/node.json``
(docs/dev/contracts.md: what ``cmt-node features/ready/helper`` read later, with the node token, so 0600),
and the plan's extra files (munge key, slurmd defaults). File writes only: unit-testable on a directory.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

from ..errors import BadInput
from .report import Plan, PlanFile

NODE_JSON = PurePosixPath("/etc/cmt/node.json")


def node_document(plan: Plan, server: str) -> dict[str, Any]:
    return {
        "node": plan.node,
        "image": plan.image,
        "sha256": plan.sha256,
        "deployment": plan.deployment,
        "features": list(plan.features),
        "server": server,
        "token": plan.node_token or "",
    }


def _inside(root: Path, path: str | PurePosixPath) -> Path:
    rel = PurePosixPath(path)
    if not rel.is_absolute() or ".." in rel.parts:
        raise BadInput(f"{path}: must be an absolute path without '..'")
    target = root / rel.relative_to("/")
    # Never follow a symlink the image planted to write outside its root.
    for parent in [target, *target.parents]:
        if parent == root:
            break
        if parent.is_symlink():
            raise BadInput(f"{path}: a symlink in the image ({parent}) would redirect the write")
    return target


def _write(root: Path, path: str | PurePosixPath, data: bytes, mode: int) -> Path:
    target = _inside(root, path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.cmt-tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
        os.fchmod(fd, mode)
    finally:
        os.close(fd)
    os.replace(tmp, target)
    return target


def lookup_ids(root: Path, owner: str) -> tuple[int, int]:
    """uid and gid of ``owner`` (``user`` or ``user:group``) in the *new root's* passwd and group."""
    user, _, group = owner.partition(":")

    def table(name: str) -> dict[str, list[str]]:
        path = root / "etc" / name
        rows = [ln.split(":") for ln in path.read_text().splitlines() if ln and not ln.startswith("#")]
        return {r[0]: r for r in rows if len(r) >= 3}

    users = table("passwd")
    if user not in users:
        raise BadInput(f"owner {owner!r}: no user {user!r} in the image's /etc/passwd")
    uid, gid = int(users[user][2]), int(users[user][3])
    if group:
        groups = table("group")
        if group not in groups:
            raise BadInput(f"owner {owner!r}: no group {group!r} in the image's /etc/group")
        gid = int(groups[group][2])
    return uid, gid


def write_identity(
    root: Path,
    plan: Plan,
    server: str,
    new_machine_id: Callable[[], str] = lambda: secrets.token_hex(16),
    chown: Callable[[Path, int, int], None] = os.chown,
) -> list[str]:
    """Write everything; returns the paths written (for the report and the tests)."""
    hostname = plan.hostname or plan.node
    written = [
        _write(root, "/etc/hostname", f"{hostname}\n".encode(), 0o644),
        _write(root, "/etc/machine-id", f"{new_machine_id()}\n".encode(), 0o444),
    ]
    hosts_path = root / "etc/hosts"
    lines = hosts_path.read_text().splitlines() if hosts_path.is_file() else ["127.0.0.1\tlocalhost"]
    lines = [ln for ln in lines if not ln.startswith("127.0.1.1")]
    lines.insert(1 if lines else 0, f"127.0.1.1\t{hostname}")
    written.append(_write(root, "/etc/hosts", ("\n".join(lines) + "\n").encode(), 0o644))
    dbus_id = root / "var/lib/dbus/machine-id"
    if dbus_id.is_file() and not dbus_id.is_symlink():
        dbus_id.unlink()  # systemd/dbus fall back to /etc/machine-id
    doc = json.dumps(node_document(plan, server), indent=2, sort_keys=True) + "\n"
    written.append(_write(root, NODE_JSON, doc.encode(), 0o600))
    for extra in plan.files:
        written.append(_write_plan_file(root, extra, chown))
    return [str(PurePosixPath("/") / p.relative_to(root)) for p in written]


#: Parts of the package that never run on a node (head node, lab); the live env carries none of them.
HEAD_NODE_ONLY = frozenset({"server", "store", "cli", "lab", "slurm", "provisioner", "__pycache__"})
NODE_LIB = PurePosixPath("/usr/lib/cmt/python")
NODE_COMMAND = PurePosixPath("/usr/local/bin/cmt-node")
READY_UNIT = PurePosixPath("/etc/systemd/system/cmt-node-ready.service")


def node_tool_files(package_dir: Path) -> list[Path]:
    """The node-side sources of ``cmt_slurm`` (the agent, its hooks, the API client): what nodes run."""
    files = []
    for path in sorted(package_dir.rglob("*")):
        rel = path.relative_to(package_dir)
        if (
            path.is_file()
            and path.suffix in (".py", ".typed")
            and not HEAD_NODE_ONLY.intersection(rel.parts[:-1])
        ):
            files.append(path)
    return files


def install_node_tools(root: Path, package_dir: Path, unit_text: str) -> list[str]:
    """Copy the node-side ``cmt_slurm`` (as sources: any python3 >= 3.11 runs them) into the new root,
    with a ``cmt-node`` command and the ``cmt-node ready`` boot unit enabled.

    The node then runs the very code of the live env that installed it, so an image never needs a
    rebuild when cmt-slurm changes. Nothing is installed into an image without ``python3``.
    """
    if not any((root / p).exists() for p in ("usr/bin/python3", "bin/python3")):
        return []
    dest = NODE_LIB / "cmt_slurm"
    for src in node_tool_files(package_dir):
        _write(root, dest / src.relative_to(package_dir).as_posix(), src.read_bytes(), 0o644)
    launcher = f'#!/bin/sh\nexec env PYTHONPATH={NODE_LIB} python3 -m cmt_slurm.agent.cli "$@"\n'
    _write(root, NODE_COMMAND, launcher.encode(), 0o755)
    _write(root, READY_UNIT, unit_text.encode(), 0o644)
    wants = _inside(root, "/etc/systemd/system/multi-user.target.wants/cmt-node-ready.service")
    wants.parent.mkdir(parents=True, exist_ok=True)
    if wants.is_symlink() or wants.exists():
        wants.unlink()
    wants.symlink_to(str(READY_UNIT))
    return [str(dest), str(NODE_COMMAND), str(READY_UNIT)]


def _write_plan_file(root: Path, item: PlanFile, chown: Callable[[Path, int, int], None]) -> Path:
    target = _write(root, item.path, item.content, item.mode)
    if item.owner:
        uid, gid = lookup_ids(root, item.owner)
        chown(target, uid, gid)
    return target
