"""``cmt-node ready``: an installed node tells the server which image it booted, and when.

Runs once per boot from ``cmt-node-ready.service`` (the image recipe installs ``SYSTEMD_UNIT``). The
server closes the deployment (``boot → done``) and marks the node ``ready`` with the image active. The
network may come up a little after the unit starts, so connection errors are retried for a bounded time.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..apiclient import ApiClient
from ..errors import BadInput, NotFound
from .report import AgentApi
from .transfer import RetryPolicy

NODE_JSON = Path("/etc/cmt/node.json")
#: ~2 minutes in all: enough for DHCP and a server restart, bounded so boot never waits forever.
READY_POLICY = RetryPolicy(attempts=10, base=1.0, cap=20.0)

SYSTEMD_UNIT = """\
[Unit]
Description=Report the booted image to the cmt-slurm boot server
Wants=network-online.target
After=network-online.target
ConditionPathExists=/etc/cmt/node.json

[Service]
Type=oneshot
ExecStart=/usr/local/bin/cmt-node ready
RemainAfterExit=yes
StandardOutput=journal+console

[Install]
WantedBy=multi-user.target
"""


@dataclass(frozen=True)
class NodeIdentity:
    node: str
    image: str
    server: str
    token: str
    deployment: int | None


def read_node_json(path: Path = NODE_JSON) -> NodeIdentity:
    """:raises NotFound: no file. :raises BadInput: unreadable or missing keys."""
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError:
        raise NotFound(
            f"{path}: no such file: this node was not installed by the cmt-slurm reimager",
            hint="reimage the node (cmt node set-target NODE IMAGE)",
        ) from None
    except ValueError as exc:
        raise BadInput(f"{path}: not valid JSON ({exc})", hint="reimage the node to rewrite it") from None
    missing = [k for k in ("node", "image", "server", "token") if not data.get(k)]
    if missing:
        raise BadInput(f"{path}: missing {', '.join(missing)}", hint="reimage the node to rewrite it")
    dep = data.get("deployment")
    return NodeIdentity(
        str(data["node"]),
        str(data["image"]),
        str(data["server"]),
        str(data["token"]),
        int(dep) if dep else None,
    )


def boot_time(proc_stat: Path = Path("/proc/stat")) -> int:
    """Epoch seconds of this boot (``btime``): what Slurm compares to notice a reboot."""
    for line in proc_stat.read_text().splitlines():
        if line.startswith("btime "):
            return int(line.split()[1])
    raise BadInput(f"{proc_stat} has no btime line")


def report_ready(
    ident: NodeIdentity,
    booted_at: int,
    *,
    client: ApiClient | None = None,
    policy: RetryPolicy = READY_POLICY,
    sleep: Callable[[float], None] = time.sleep,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    api = AgentApi(ident.server, policy=policy, sleep=sleep, client=client, log=log)
    return api.retrying("ready", lambda: api.client.ready(ident.node, ident.image, booted_at, ident.token))


def add_ready_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--node-json",
        metavar="FILE",
        type=Path,
        default=NODE_JSON,
        help="identity file (default %(default)s)",
    )
    parser.add_argument(
        "--print-unit", action="store_true", help="print the systemd unit that runs this at boot, and exit"
    )


def run_ready(args: argparse.Namespace) -> int:
    if args.print_unit:
        print(SYSTEMD_UNIT, end="")
        return 0
    ident = read_node_json(args.node_json)
    report_ready(ident, boot_time())
    print(f"cmt-node: {ident.node} reported ready with image {ident.image}")
    return 0
