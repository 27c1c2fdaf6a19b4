"""Lab power driver for namespace nodes: a ``slurmd -N`` in its own mount/UTS namespace, no disk.

Such a node cannot boot a kernel, so its "reimage" plays the parts that would run elsewhere, talking to
the real boot server exactly as they would:

- firmware + PXE + iPXE: without a token, ``GET /boot/ipxe?mac=`` (the node's MAC from
  ``CMT_LAB_MAC``) answers the reimage script holding the deployment and a fresh one-time token;
- the live reimager: fetch the plan, report every stage, write the new identity (``node.json`` and
  ``/etc/os-release``, bind-mounted per node by the test cluster) — no disk to write;
- the new OS booting: restart slurmd with ``-b`` (Slurm then sees a newer boot time), then
  ``POST /nodes/{name}/ready`` as ``cmt-node ready`` would.

``CMT_LAB_FAIL`` names a file; if it holds ``<stage>: <message>``, the reimage fails at that stage: before
``write`` the node falls back to its old OS (as the real reimager does while the old disk is intact),
from ``write`` on it stays down in the "live env" until an admin acts. Only the lab
uses this module: the QEMU tests cover real disks with the real reimager.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..apiclient import ApiClient
from ..errors import BackendError, ConfigError
from . import nodefile
from .power import ReimageTarget

#: The live reimager's stages in order (docs/dev/contracts.md, reports).
STAGES = ("live", "transfer", "verify", "write", "grow", "identity", "kexec")
#: From this stage on the old OS is gone: a failure leaves the node in the live env, not rebooted.
DISK_TOUCHED = ("write", "grow", "identity", "kexec")
OS_RELEASE = Path("/etc/os-release")


@dataclass
class NamespaceLabDriver:
    slurmd_argv: list[str]
    pidfile: Path
    mac: str | None = None
    fail_file: Path | None = None
    #: Seconds the simulated boot takes (between the old slurmd stopping and the new one starting).
    boot_delay: float = 0.5

    @classmethod
    def from_env(cls, env: dict[str, str]) -> NamespaceLabDriver:
        try:
            argv = json.loads(env["CMT_LAB_SLURMD_ARGV"])
            pidfile = Path(env["CMT_LAB_SLURMD_PIDFILE"])
        except (KeyError, ValueError) as exc:
            raise ConfigError(
                f"lab-namespace power driver: {exc} (CMT_LAB_SLURMD_ARGV / CMT_LAB_SLURMD_PIDFILE)",
                hint="the test cluster sets them for each slurmd; real nodes use CMT_POWER_DRIVER=kexec",
            ) from None
        fail = env.get("CMT_LAB_FAIL")
        return cls(
            [str(a) for a in argv], pidfile, env.get("CMT_LAB_MAC") or None, Path(fail) if fail else None,
            float(env.get("CMT_LAB_BOOT_DELAY") or 0.5),
        )  # fmt: skip

    # ---- the PowerDriver port
    def reboot(self) -> None:
        self._stop_slurmd()
        time.sleep(self.boot_delay)
        self._start_slurmd()

    def reimage(self, target: ReimageTarget) -> None:
        token, deployment = target.token, target.deployment
        if not token:
            token, deployment = self._pxe(target)
            if token is None:  # the server says: boot the local disk
                self.reboot()
                return
        api = ApiClient(target.server, timeout=10, retries=3)
        answer = api.call("GET", f"/api/v1/deployments/{deployment}", token=token, query={"plan": 1})
        plan: dict[str, Any] = answer.get("plan", answer)
        self._stop_slurmd()
        failure = self._injected_failure()
        for stage in STAGES:
            api.report(deployment, token, stage)
            if failure and failure[0] == stage:
                api.report(deployment, token, "failed", message=failure[1])
                if stage not in DISK_TOUCHED:
                    time.sleep(self.boot_delay)
                    self._start_slurmd()  # the old OS is intact: back to it
                # else: like the real reimager, stay in the live env (slurmd down) for an admin
                return
            if stage == "identity":
                self._write_identity(plan, target.server)
        time.sleep(self.boot_delay)
        self._start_slurmd()
        api.ready(str(plan["node"]), str(plan["image"]), int(time.time()), str(plan["node_token"]))

    # ---- parts
    def _pxe(self, target: ReimageTarget) -> tuple[str | None, int]:
        if not self.mac:
            raise ConfigError("lab-namespace driver: no CMT_LAB_MAC to PXE-boot with")
        url = ApiClient(target.server).url("/boot/ipxe", {"mac": self.mac})  # checks http(s)
        with urllib.request.urlopen(url, timeout=10) as resp:  # noqa: S310 - the boot script is text
            script = resp.read(1 << 20).decode()
        dep = re.search(r"cmt\.deployment=(\d+)", script)
        tok = re.search(r"cmt\.token=(\S+)", script)
        if not dep or not tok:
            return None, target.deployment
        return tok.group(1), int(dep.group(1))

    def _injected_failure(self) -> tuple[str, str] | None:
        if self.fail_file is None or not self.fail_file.exists():
            return None
        stage, _, message = self.fail_file.read_text().strip().partition(":")
        return (stage.strip(), message.strip() or "injected failure") if stage else None

    def _write_identity(self, plan: dict[str, Any], server: str) -> None:
        features = [str(f) for f in plan.get("features") or []]
        os_tag = next((f.removeprefix("os=") for f in features if f.startswith("os=")), "linux")
        identity = {
            "node": plan["node"], "image": plan["image"], "sha256": plan.get("sha256"),
            "deployment": plan.get("deployment"), "features": features,
            "server": plan.get("server") or server, "token": plan["node_token"],
        }  # fmt: skip
        nodefile.write_json_atomic(nodefile.node_file(), identity)
        # In place: /etc/os-release is a bind mount of the node's own file; a rename would not show.
        with OS_RELEASE.open("w") as f:
            f.write(
                f'PRETTY_NAME="{plan["image"]}"\nNAME="{os_tag}"\nID={os_tag}\nCMT_IMAGE={plan["image"]}\n'
            )

    def _slurmd_pid(self) -> int | None:
        try:
            return int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return None

    def _stop_slurmd(self) -> None:
        pid = self._slurmd_pid()
        if pid is None:
            return
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.05)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)

    def _start_slurmd(self) -> None:
        argv = [a for a in self.slurmd_argv if a != "-D"] + ["-b"]
        # Without -D slurmd daemonises itself; the child returns once it has.
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=30, check=False)
        if proc.returncode != 0:
            raise BackendError(
                f"lab: {' '.join(argv)} exited {proc.returncode}: {proc.stderr.decode()[-300:]}"
            )


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False
