"""Jobs asking for an image, on real Slurm with the real boot server; lab nodes reimaged by the
namespace power driver (restart of their slurmd with the new identity). Each test bounded."""

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from slurm.fixtures import need_slurm
from slurm.lab import Lab, start_lab

pytestmark = pytest.mark.slurm
REPORT = "#!/bin/sh\n. /etc/os-release; echo $ID; hostname; cat /etc/cmt/node.json\n"


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Callable[..., Lab]]:
    need_slurm()
    labs: list[Lab] = []

    def make(images: dict[str, str], **kw: Any) -> Lab:
        labs.append(start_lab(tmp_path / f"lab{len(labs)}", images, **kw))
        return labs[-1]

    yield make
    for one in labs:
        one.stop()


def output(lab: Lab, job: int) -> tuple[str, str, dict[str, Any]]:
    text = lab.cluster.job_output(job)
    os_id, host, rest = text.split("\n", 2)
    return os_id, host, json.loads(rest)


def timeline(lab: Lab, job: int, label: str) -> dict[str, Any]:
    j = lab.cluster.job(job)
    assert j is not None
    # start_time is when Slurm allocated (a prolog runs after it); end_time - submit_time is the
    # user's wait for a job of no duration.
    entry = {
        "test": label, "job": job, "submit_to_start_s": j["start_time"] - j["submit_time"],
        "submit_to_end_s": j["end_time"] - j["submit_time"],
    }  # fmt: skip
    print("TIMELINE", json.dumps(entry))  # for the issue note (pytest -s); not asserted
    return entry


def boot_times(lab: Lab) -> dict[str, int]:
    return {n["name"]: n["boot_time"] for n in lab.cluster.sinfo_nodes()}


def test_job_asking_another_os_gets_a_reimaged_node(lab: Callable[..., Lab]) -> None:
    lb = lab({"n1": "debian12-2026.11"})
    before = boot_times(lb)
    job = lb.cluster.sbatch("--constraint=os:debian13", script=REPORT)
    lb.cluster.wait_job(job, ["COMPLETED"], 90)
    os_id, host, node_json = output(lb, job)
    assert (os_id, host, node_json["image"]) == ("debian13", "n1", "debian13-2026.11")
    srv = lb.server.node("n1")
    assert (srv["state"], srv["current_image"]) == ("ready", "debian13-2026.11")
    n1 = lb.cluster.node("n1")
    assert "os=debian13" in n1["active_features"].split(",") and "libc=2.41" in n1["active_features"]
    assert n1["boot_time"] > before["n1"]
    timeline(lb, job, "reimage one node (fast start)")


def test_active_os_and_libc_floor_start_without_reboot(lab: Callable[..., Lab]) -> None:
    lb = lab({"n1": "centos7-2024.06", "n2": "debian12-2026.11"})
    before = boot_times(lb)
    on_os = lb.cluster.sbatch("--constraint=os:centos7", script=REPORT)
    # glibc >= 2.28: only n2 (2.36) already satisfies it; n1 (2.17) would need a reboot.
    on_libc = lb.cluster.sbatch("--constraint=libc:2.28", script=REPORT)
    for j in (on_os, on_libc):
        lb.cluster.wait_job(j, ["COMPLETED"], 30)
    assert output(lb, on_os)[:2] == ("centos7", "n1")
    assert output(lb, on_libc)[:2] == ("debian12", "n2")
    assert boot_times(lb) == before
    for n in ("n1", "n2"):
        assert not (lb.cluster.node_dir(n) / "var-lib-cmt" / "request.json").exists()
    assert [str(d.stage) for d in lb.server.prov.node_deployments("n1", 5)] == ["done"]  # the install only


def test_two_jobs_for_two_images_on_two_nodes(lab: Callable[..., Lab]) -> None:
    lb = lab({"n1": "debian12-2026.11", "n2": "debian12-2026.11"})
    a = lb.cluster.sbatch("--constraint=os:rocky9", script=REPORT)
    b = lb.cluster.sbatch("--constraint=image:rocky8-2026.10", script=REPORT)
    for j in (a, b):
        lb.cluster.wait_job(j, ["COMPLETED"], 120)
    (os_a, host_a, nj_a), (os_b, host_b, nj_b) = output(lb, a), output(lb, b)
    assert (os_a, nj_a["image"]) == ("rocky9", "rocky9-2026.11")  # the newest rocky9 build
    assert (os_b, nj_b["image"]) == ("rocky8", "rocky8-2026.10")
    assert {host_a, host_b} == {"n1", "n2"}
    for j, label in ((a, "two images: first"), (b, "two images: second")):
        timeline(lb, j, label)


def test_failed_reimage_drains_the_node_and_the_job_runs_elsewhere(lab: Callable[..., Lab]) -> None:
    lb = lab({"n1": "debian12-2026.11", "n2": "rocky8-2026.10"})
    (lb.cluster.node_dir("n1") / "lab-fail").write_text("write: checksum mismatch")
    busy = lb.cluster.sbatch("-w", "n2", script="#!/bin/sh\nsleep 6\n")
    lb.cluster.wait_job(busy, ["RUNNING"], 20)
    job = lb.cluster.sbatch("--constraint=os:debian13", script=REPORT)  # only n1 is free: it gets it
    reason = "cmt: reimage to debian13-2026.11 failed at write: checksum mismatch"
    lb.cluster.wait_nodes(lambda n: "DRAIN" in n["state_flags"] and n["reason"] == reason, 60, ["n1"])
    done = lb.cluster.wait_job(job, ["COMPLETED"], 120)
    assert done["restart_cnt"] >= 1  # requeued once, then run on n2 after its own reimage
    os_id, host, _ = output(lb, job)
    assert (os_id, host) == ("debian13", "n2")
    srv = lb.server.node("n1")
    assert (srv["state"], srv["reason"]) == ("failed", reason)
    assert "drained n1: " + reason in lb.watch_log()
    # The admin clears the failure on the server (node state back to ready/discovered): resumed.
    lb.server.prov.clear_failed("n1", "admin")
    lb.cluster.wait_nodes(lambda n: "DRAIN" not in n["state_flags"], 30, ["n1"])
    timeline(lb, job, "failed reimage, requeued, run elsewhere")


def test_without_fast_start_the_job_waits_for_slurms_periodic_pass(lab: Callable[..., Lab]) -> None:
    lb = lab({"n1": "debian12-2026.11"}, fast_start=False, watcher=False)
    job = lb.cluster.sbatch("--constraint=os:debian13", script=REPORT)
    lb.cluster.wait_job(job, ["COMPLETED"], 120)
    assert output(lb, job)[0] == "debian13"
    timeline(lb, job, "reimage one node (no PrologSlurmctld)")


def test_prolog_mode_end_to_end(lab: Callable[..., Lab]) -> None:
    lb = lab({"n1": "debian12-2026.11", "n2": "rocky8-2026.10"}, mode="prolog")
    static = lb.cluster.node("n1")["features"].split(",")
    assert "os=rocky9" in static and "libc=2.41" in static  # every node offers every image
    job = lb.cluster.sbatch("--constraint=os:rocky9", "-w", "n1", script=REPORT)
    lb.cluster.wait_job(job, ["COMPLETED"], 90)
    os_id, host, node_json = output(lb, job)
    assert (os_id, host, node_json["image"]) == ("rocky9", "n1", "rocky9-2026.11")
    assert (lb.server.node("n1")["state"], lb.server.node("n1")["current_image"]) == (
        "ready",
        "rocky9-2026.11",
    )
    timeline(lb, job, "prolog mode: reimage one node")
    # Already right: the prolog lets it through without a deployment.
    before = len(lb.server.prov.node_deployments("n2", 10))
    again = lb.cluster.sbatch("--constraint=libc:2.28", "-w", "n2", script=REPORT)
    lb.cluster.wait_job(again, ["COMPLETED"], 30)
    assert output(lb, again)[:2] == ("rocky8", "n2")
    assert len(lb.server.prov.node_deployments("n2", 10)) == before
