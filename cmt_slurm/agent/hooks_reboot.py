"""``cmt-node reboot``: Slurm's RebootProgram. Returns at once; a detached child does the work.

slurmd runs RebootProgram with no arguments under a blocking ``system()``, so the feature the job needs
comes from what ``cmt-node helper FEATURE`` recorded just before. The child then:

1. resolves the request with the server (``POST /nodes/{name}/request`` with the node token), retrying
   a bounded number of times; the helper may have done it already and kept the deployment token;
2. with no recorded request (an admin's ``scontrol reboot``, ``cmt node reimage``, the epilog's return
   to the default image) asks the server whether a deployment waits for this node;
3. hands the deployment to the power driver (kexec into the reimager; firmware reboot as fallback), or
   does a plain reboot when nothing is to be reimaged or the server cannot be reached (PXE asks it
   again at boot). Everything is logged to ``reboot.log`` beside the request file.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..apiclient import ApiClient
from ..errors import CmtError
from . import nodefile
from .hooks_helper import server_features
from .power import PowerDriver, ReimageTarget, driver_from_env

#: Attempts (and the pause between them) to resolve a request with the server before a plain reboot.
RESOLVE_ATTEMPTS = 5
RESOLVE_PAUSE_S = 2.0
_WAITING = ("requested", "queued")


def add_reboot_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--foreground", action="store_true", help="do the work in this process (debugging; slurmd must not)"
    )


def run_reboot(args: argparse.Namespace) -> int:
    if args.foreground:
        return reboot_now()
    log = nodefile.request_file().with_name("reboot.log")
    child = os.fork()
    if child > 0:
        os.waitpid(child, 0)  # the middle process exits at once: no zombie left for slurmd
        return 0  # slurmd's system() returns now; the grandchild below carries on
    os.setsid()
    if os.fork() > 0:
        os._exit(0)
    try:
        log.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        rc = reboot_now()
    except BaseException:  # the detached child has nobody to report to but its log
        traceback.print_exc()
        rc = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(rc)


def log(msg: str) -> None:
    print(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} cmt-node reboot: {msg}", flush=True)


@dataclass
class Resolver:
    """Turns what the node knows (node.json, the recorded request) into a ``ReimageTarget`` or None."""

    client: ApiClient
    node: str
    token: str
    attempts: int = RESOLVE_ATTEMPTS
    pause: float = RESOLVE_PAUSE_S
    sleep: Callable[[float], None] = time.sleep

    def _retry(self, what: str, call: Callable[[], Any]) -> Any:
        last: CmtError | None = None
        for attempt in range(self.attempts):
            try:
                return call()
            except CmtError as exc:
                last = exc
                log(f"{what}: {exc.message} (attempt {attempt + 1}/{self.attempts})")
                if exc.http_status in (400, 401, 403, 404, 409, 422):
                    break  # the answer will not change by asking again
                self.sleep(self.pause)
        assert last is not None
        raise last

    def resolve(
        self, request: nodefile.Request | None, server: str, image: str | None
    ) -> ReimageTarget | None:
        if request is not None and request.sent and request.deployment and request.token:
            return ReimageTarget(server, self.node, request.deployment, request.token, image)
        if request is not None and request.features:
            answer = self._retry(
                f"request {'&'.join(request.features)}",
                lambda: self.client.request_features(
                    self.node, server_features(self.client, request.features), self.token
                ),
            )
            dep = answer.get("deployment")
            if not isinstance(dep, dict):
                log(f"the server says {self.node} already runs what {request.features} needs")
                return None
            token = dep.get("token") or (request.token if request.deployment == dep.get("id") else None)
            return ReimageTarget(server, self.node, int(dep["id"]), str(token) if token else None, image)
        info = self._retry(f"look up {self.node}", lambda: self.client.node(self.node))
        for dep in info.get("deployments") or ():
            if isinstance(dep, dict) and dep.get("stage") in _WAITING:
                return ReimageTarget(server, self.node, int(dep["id"]), None, image)
        return None


def reboot_now(
    driver: PowerDriver | None = None, *, attempts: int = RESOLVE_ATTEMPTS, pause: float = RESOLVE_PAUSE_S
) -> int:
    node = nodefile.read_node()
    request = nodefile.take_request()
    driver = driver or driver_from_env()
    target = None
    server = os.environ.get("CMT_SERVER_URL") or (node or {}).get("server")
    if node and server and node.get("node") and node.get("token"):
        try:
            client = ApiClient(str(server), timeout=5, retries=0)
            resolver = Resolver(client, str(node["node"]), str(node["token"]), attempts, pause)
            target = resolver.resolve(request, str(server), str(node.get("image") or "") or None)
        except CmtError as exc:
            log(f"cannot resolve the reimage with {server}: {exc.message}; rebooting (PXE asks again)")
    else:
        log(f"{nodefile.node_file()}: no node name, token or server; plain reboot")
    if target is None:
        log("plain reboot")
        driver.reboot()
        return 0
    log(f"deployment {target.deployment}: {'kexec into the reimager' if target.token else 'firmware boot'}")
    driver.reimage(target)
    log("reimage handed over")
    return 0
