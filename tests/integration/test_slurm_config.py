"""`cmt slurm config` output loaded by a real slurmctld + slurmd, and job_submit.lua through real sbatch."""

import re
from collections.abc import Iterator

import pytest
from slurm.cluster import MiniCluster, NodeSpec, SbatchRejected
from slurm.cmtconf import generate, identity
from slurm.fixtures import need_slurm

pytestmark = pytest.mark.slurm


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MiniCluster]:
    need_slurm()
    root = tmp_path_factory.mktemp("cfg")
    conf = generate(root / "cluster0" / "etc")
    nodes = []
    for name, image in (("n1", "debian12-2026.11"), ("n2", "rocky8-2026.10")):
        osr, nj = identity(image, name)
        nodes.append(NodeSpec(name, os_release=osr, node_json=nj))
    with MiniCluster(root / "cluster0", nodes, extra_conf=conf.include, conf_files=conf.files) as c:
        yield c


def test_every_generated_feature_loads_and_nodes_report_theirs(cluster: MiniCluster) -> None:
    helpers = (cluster.conf_dir / "helpers.conf").read_text()
    emitted = re.findall(r"^Feature=(\S+)", helpers, re.M)
    log = (cluster.log_dir / "slurmctld.log").read_text()
    registered = re.findall(r'_feature_register: Adding new feature "([^"]+)"', log)
    assert sorted(registered) == sorted(emitted)
    n1, n2 = sorted(cluster.sinfo_nodes(), key=lambda n: n["name"])
    assert set(n1["features"].split(",")) == set(emitted)  # every helpers feature is available
    assert n1["active_features"].split(",") == [
        "os=debian12",
        "libc=2.17",
        "libc=2.28",
        "libc=2.34",
        "libc=2.36",
        "image=debian12_2026.11",
    ]
    assert n2["active_features"].split(",") == ["os=rocky8", "libc=2.17", "libc=2.28", "image=rocky8_2026.10"]
    ctl = (cluster.conf_dir / "cmt-slurm.conf").read_text()
    assert "RebootProgram=" in ctl and "JobSubmitPlugins=lua" in ctl


def _constraint(cluster: MiniCluster, job: int) -> str:
    j = cluster.job(job)
    assert j is not None
    return str(j["features"])


@pytest.mark.parametrize(
    ("asked", "stored"),
    [
        ("os:rocky8", "os=rocky8"),
        ("os=rocky8", "os=rocky8"),
        ("libc:2.30", "libc=2.34"),  # at least 2.30: the lowest floor that reaches it
        ("libc:2.28&os:debian12", "libc=2.28&os=debian12"),
        ("image:rocky9-2026.05", "image=rocky9_2026.05"),
        ("os:rocky8,image:rocky8-2026.10", "os=rocky8&image=rocky8_2026.10"),
    ],
)
def test_job_submit_rewrites_user_syntax(cluster: MiniCluster, asked: str, stored: str) -> None:
    job = cluster.sbatch("--hold", f"--constraint={asked}", script="#!/bin/sh\ntrue\n")
    assert _constraint(cluster, job) == stored
    cluster.run("scancel", str(job))


@pytest.mark.parametrize(
    ("asked", "message"),
    [
        (
            "os:plan9",
            "cmt: unknown os 'plan9' in --constraint; the catalogue has: centos7, debian12, debian13, rocky8, rocky9, ubuntu2404",
        ),
        ("image:nope-1", "cmt: unknown image 'nope-1' in --constraint; the catalogue has: centos7-2024.06"),
        ("libc:3.0", "cmt: no image in the catalogue has glibc >= 3.0"),
        ("libc:new", "cmt: libc:new is not a version like 2.28"),
        ("os:rocky8|os:debian12", "os/libc/image terms can only be joined with '&'"),
        ("[os:rocky8&ib]", "os/libc/image terms can only be joined with '&'"),
        ("os:rocky8*2", "os/libc/image terms can only be joined with '&'"),
        ("os:rocky8&os:debian12", "asks for two os values"),
    ],
)
def test_job_submit_rejects_with_the_reason(cluster: MiniCluster, asked: str, message: str) -> None:
    with pytest.raises(SbatchRejected) as err:
        cluster.sbatch(f"--constraint={asked}")
    assert message in str(err.value)


def test_a_job_on_an_active_os_runs_without_reboot(cluster: MiniCluster) -> None:
    before = {n["name"]: n["boot_time"] for n in cluster.sinfo_nodes()}
    job = cluster.sbatch("--constraint=os:rocky8", script="#!/bin/sh\n. /etc/os-release; echo $ID\n")
    done = cluster.wait_job(job, ["COMPLETED"], 30)
    assert done["nodes"] == "n2"
    assert cluster.job_output(job).strip() == "rocky8"
    assert {n["name"]: n["boot_time"] for n in cluster.sinfo_nodes()} == before
    assert not (cluster.node_dir("n2") / "var-lib-cmt" / "request.json").exists()


def test_job_submit_also_checks_a_modified_constraint(cluster: MiniCluster) -> None:
    job = cluster.sbatch("--hold", "--constraint=os:rocky8", script="#!/bin/sh\ntrue\n")
    cluster.run("scontrol", "update", f"JobId={job}", "Features=os:debian12&libc:2.30")
    assert _constraint(cluster, job) == "os=debian12&libc=2.34"
    refused = cluster.run("scontrol", "update", f"JobId={job}", "Features=os:plan9", check=False)
    assert refused.returncode != 0
    assert _constraint(cluster, job) == "os=debian12&libc=2.34"
    cluster.run("scancel", str(job))
