"""Admin pre-provisioning (``cmt node reimage NODE IMAGE --when idle|now``), without a job asking.

The target is recorded on the server first; then Slurm reboots the node through RebootProgram
(``cmt-node reboot``, which finds the waiting deployment on the server: the helper is not called on
this path). ``scontrol reboot ASAP nextstate=resume`` drains the node so no new job lands on it, lets
running jobs finish (``idle``), and returns it to service once it registers with the new image.
``now`` requeues the node's jobs first, so the reboot starts at once.
"""

from __future__ import annotations

import contextlib
from typing import Any, Protocol

from ..errors import BadInput, CmtError
from .client import SlurmClient

WHEN = ("idle", "now")


class TargetApi(Protocol):
    def set_target(self, name: str, image: str) -> dict[str, Any]: ...


def reimage_node(
    server: TargetApi, slurm: SlurmClient, node: str, image: str, when: str = "idle"
) -> dict[str, Any]:
    """Record ``image`` as ``node``'s target and have Slurm reboot it. Returns the deployment.

    :raises BadInput: ``when`` is not idle or now. :raises NotFound | Conflict: from the server (unknown
        node or image, a reimage already running). :raises BackendError: Slurm refused the reboot.
    """
    if when not in WHEN:
        raise BadInput(f"--when {when!r} is not one of {', '.join(WHEN)}", hint="idle waits for running jobs")
    slurm.node(node)  # NotFound before anything is recorded, if Slurm does not know the node
    answer = server.set_target(node, image)
    if when == "now":
        for job in slurm.jobs():
            if node in job.nodes and job.state in ("RUNNING", "CONFIGURING"):
                # A job that ended meanwhile, or cannot be requeued: the ASAP reboot waits for it.
                with contextlib.suppress(CmtError):
                    slurm.requeue(job.job_id)
    slurm.reboot([node], f"cmt: reimage to {image}", asap=True, nextstate="resume")
    dep = answer.get("deployment", answer)
    return dict(dep) if isinstance(dep, dict) else {"deployment": dep}
