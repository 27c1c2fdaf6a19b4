"""The mini cluster itself, and the Slurm adapter against it."""

from collections.abc import Callable

import pytest
from slurm.cluster import MiniCluster, NodeSpec, os_release_text
from slurm.fixtures import make_cluster

from cmt_slurm.errors import BackendError
from cmt_slurm.runner import SubprocessRunner
from cmt_slurm.slurm.client import PrefixedRunner, SlurmCli

__all__ = ["make_cluster"]
pytestmark = pytest.mark.slurm


def test_each_job_sees_its_node_identity(make_cluster: Callable[..., MiniCluster]) -> None:
    c = make_cluster(
        [NodeSpec("n1"), NodeSpec("n2", os_release=os_release_text("rocky", "8.9", "Rocky Linux 8.9"))]
    )
    script = "#!/bin/sh\nhostname\n. /etc/os-release; echo $ID $VERSION_ID\n"
    jobs = {name: c.sbatch("-w", name, script=script) for name in ("n1", "n2")}
    for j in jobs.values():
        c.wait_job(j, ["COMPLETED"], 30)
    assert c.job_output(jobs["n1"]).split() == ["n1", "debian", "12"]
    assert c.job_output(jobs["n2"]).split() == ["n2", "rocky", "8.9"]


def test_adapter_drains_and_resumes_a_real_node(make_cluster: Callable[..., MiniCluster]) -> None:
    c = make_cluster([NodeSpec("n1", features="os=debian12,libc=2.36")])
    slurm = SlurmCli(PrefixedRunner(SubprocessRunner(), c.wrap([]), {"SLURM_CONF": str(c.slurm_conf)}))
    assert slurm.node("n1").active_features == ("os=debian12", "libc=2.36")
    reason = "cmt: reimage to debian13 failed at write: checksum mismatch"
    slurm.drain("n1", reason)
    n1 = slurm.node("n1")
    assert n1.drained and n1.reason == reason
    slurm.resume("n1")
    # 22.05 shows a resumed node NOT_RESPONDING (boot_time 0) until its slurmd registers again.
    c.wait_nodes(lambda n: n["state"] == "idle" and not n["state_flags"], 20)
    assert slurm.node("n1").usable
    with pytest.raises(BackendError, match="Invalid node name"):
        slurm.drain("n9", "x")
    job = c.sbatch("--constraint=os=debian12", script="#!/bin/sh\nsleep 20\n")
    c.wait_job(job, ["RUNNING"], 20)
    (info,) = slurm.jobs()
    assert (info.job_id, info.state, info.nodes, info.constraint) == (job, "RUNNING", ("n1",), "os=debian12")
