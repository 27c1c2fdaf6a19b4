"""``cmt-node helper [FEATURE]`` (Slurm node_features/helpers ``Helper=``) and ``cmt-node features``.

slurmd runs the helper as root with its own environment:

- with no argument at every start and ``scontrol reconfigure``, once per ``Feature=`` line: print the
  active features, one a line. That path reads only /etc/cmt/node.json: no network, no catalogue, and
  only the standard library, so it stays well under 50 ms.
- with one argument (a feature a job needs) just before RebootProgram, once per missing feature; its
  exit code is ignored. Record the feature (merged with the other calls of this reboot) and tell the
  server, within a bounded time (``SEND_TIMEOUT``, below helpers.conf's ExecTime): a slow or absent
  server is recorded as an error and ``cmt-node reboot`` retries.
"""

from __future__ import annotations

import os
import re
import sys
from typing import TYPE_CHECKING

from . import nodefile

if TYPE_CHECKING:  # argparse alone costs the no-argument path a few ms
    import argparse

    from ..apiclient import ApiClient

#: Seconds the helper may spend telling the server (ExecTime defaults to 10 s; leave room for slurmd).
SEND_TIMEOUT = 4.0
_INVALID = re.compile(r"[^A-Za-z0-9_.]")


def image_feature(name: str) -> str:
    # Same mapping as cmt_slurm.slurm.confgen.image_feature; duplicated to keep this import-light.
    return "image=" + _INVALID.sub("_", name)


def active_features(node: dict[str, object] | None) -> list[str]:
    """What node.json says this node provides: its ``features`` and ``image=<image>``."""
    if not node:
        return []
    raw = node.get("features")
    feats = [str(f) for f in raw if f] if isinstance(raw, list) else []
    image = node.get("image")
    if isinstance(image, str) and image and not any(f.startswith("image=") for f in feats):
        feats.append(image_feature(image))
    return feats


def add_helper_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("feature", nargs="?", help="a feature a job needs (called by slurmd before reboot)")


def add_features_arguments(parser: argparse.ArgumentParser) -> None:
    return None


def run_features(args: argparse.Namespace) -> int:
    out = "".join(f"{f}\n" for f in active_features(nodefile.read_node()))
    sys.stdout.write(out)
    return 0


def run_helper(args: argparse.Namespace) -> int:
    if not args.feature:
        return run_features(args)
    return record_and_send(args.feature)


def record_and_send(feature: str, timeout: float = SEND_TIMEOUT) -> int:
    """Record ``feature`` for the coming reboot and pass the merged request to the server."""
    with nodefile.locked_request() as req:
        if feature not in req.features:
            req.features.append(feature)
        features = list(req.features)
    node = nodefile.read_node()
    result = send_request(node, features, timeout)
    with nodefile.locked_request() as req:
        if req.features == features or set(features) <= set(req.features):
            req.sent, req.error = result.sent, result.error
            if result.deployment is not None:
                # Only the call that created the deployment gets its token; later merges keep it.
                if result.deployment != req.deployment or result.token:
                    req.token = result.token
                req.deployment = result.deployment
    if result.error:
        print(f"cmt-node helper: {result.error} (the reboot step retries)", file=sys.stderr)
    return 0


class SendResult:
    def __init__(
        self, sent: bool, deployment: int | None = None, token: str | None = None, error: str | None = None
    ):
        self.sent, self.deployment, self.token, self.error = sent, deployment, token, error


def server_client(node: dict[str, object] | None, timeout: float) -> ApiClient | None:
    """An ApiClient for this node's server and token, or None when node.json cannot say."""
    from ..apiclient import ApiClient  # noqa: PLC0415 - only the request path pays for http.client

    server = os.environ.get("CMT_SERVER_URL") or (node or {}).get("server")
    if not isinstance(server, str) or not server:
        return None
    return ApiClient(server, timeout=timeout, retries=0)


def server_features(client: ApiClient, features: list[str]) -> list[str]:
    """Features as the server names them: Slurm's ``image=debian12_2026.11`` (Slurm feature names
    cannot hold ``-``) back to the catalogue name ``image=debian12-2026.11``, via ``GET /images``."""
    if not any(f.startswith("image=") for f in features):
        return features
    names = {image_feature(str(i.get("name"))): str(i.get("name")) for i in client.images()}
    return [f"image={names[f]}" if f in names else f for f in features]


def send_request(node: dict[str, object] | None, features: list[str], timeout: float) -> SendResult:
    from ..errors import CmtError  # noqa: PLC0415 - keeps the no-argument path minimal

    if not node or not node.get("node") or not node.get("token"):
        return SendResult(
            False, error=f"{nodefile.node_file()}: no node name or token to ask the server with"
        )
    # Mapping an image feature costs a second call: split the budget so the total stays bounded.
    two_calls = any(f.startswith("image=") for f in features)
    client = server_client(node, timeout / 2 if two_calls else timeout)
    if client is None:
        return SendResult(False, error=f"{nodefile.node_file()}: no server URL")
    try:
        answer = client.request_features(
            str(node["node"]), server_features(client, features), str(node["token"])
        )
    except CmtError as exc:
        return SendResult(False, error=exc.message)
    dep = answer.get("deployment")
    if not isinstance(dep, dict):
        return SendResult(True)
    token = dep.get("token")
    return SendResult(True, int(dep["id"]), str(token) if token else None)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the generated ``cmt-node-helper`` wrapper (``python -m``): same behaviour as
    ``cmt-node helper``, without the start-up cost of the full ``cmt-node`` command table."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) > 1 or (args and args[0].startswith("-")):
        print("usage: cmt-node-helper [FEATURE]", file=sys.stderr)
        return 2
    if not args:
        sys.stdout.write("".join(f"{f}\n" for f in active_features(nodefile.read_node())))
        return 0
    return record_and_send(args[0])


if __name__ == "__main__":
    sys.exit(main())
