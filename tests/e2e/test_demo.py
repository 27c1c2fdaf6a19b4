"""The demo scenario as a test: Slurm → helper → boot server → iPXE/kexec → live reimager → qcow2 → kexec →
slurmd in the VM, nothing simulated (two QEMU nodes, TCG).

The module runs ``Demo.run()`` once (install image A on both blank nodes through LLDP discovery, then the
jobs os:B, os:A, libc:<B's glibc>), takes a screenshot of the dashboard during the reimage, then checks
the outcome; the last test is the failure path (a digest that does not match).
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cmt_slurm.lab.demo import Demo, DemoOptions, DemoResult
from cmt_slurm.lab.demo_watch import JobWatch
from tests.conftest import REPO
from tests.e2e.conftest import lab_prerequisites, new_lab_dir, wait_until

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.qemu,
    pytest.mark.slurm,
    # The lab's daemons are detached on purpose (procs.spawn); their Popen objects die before they do.
    pytest.mark.filterwarnings("ignore:subprocess \\d+ is still running:ResourceWarning"),
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]

SLURM = ("slurmctld", "munged", "sbatch", "srun", "sinfo", "squeue", "scontrol")
#: Not docs/dashboard.png: the server's own dashboard test writes that one (fake nodes).
SCREENSHOT = REPO / "docs" / "demo-dashboard.png"
STAGES = ["requested", "live", "transfer", "verify", "write", "grow", "identity", "kexec"]


@dataclass
class Run:
    demo: Demo
    result: DemoResult
    log: list[str]


def _screenshot(url: str, target: Path) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        return
    tmp = target.with_suffix(".tmp.png")
    # --timeout: the page holds an SSE stream open, so "loaded" never comes; shoot after 6 s.
    argv = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
            "--window-size=1280,900", "--timeout=6000", f"--screenshot={tmp}", url]  # fmt: skip
    try:
        subprocess.run(argv, capture_output=True, timeout=120, check=False)
    except subprocess.TimeoutExpired:
        return
    if tmp.is_file() and tmp.stat().st_size > 0:
        tmp.replace(target)


@pytest.fixture(scope="module")
def run() -> Iterator[Run]:
    lab_prerequisites()
    missing = [b for b in SLURM if shutil.which(b) is None]
    if missing:
        pytest.skip(f"missing {', '.join(missing)} (run scripts/install-deps)")
    log: list[str] = []
    shots: list[threading.Thread] = []
    holder: dict[str, Demo] = {}

    def out(line: str) -> None:
        log.append(line)
        print(line, flush=True)

    def on_stage(watch: JobWatch, stage: str) -> None:
        if stage == "write" and not shots:  # the dashboard mid-reimage, for docs/demo.md
            url = holder["demo"].lab.host_url + "/"
            shots.append(threading.Thread(target=_screenshot, args=(url, SCREENSHOT), daemon=True))
            shots[0].start()

    demo = Demo(DemoOptions(nodes=2, workdir=new_lab_dir("demo"), out=out, on_stage=on_stage))
    holder["demo"] = demo
    try:
        result = demo.run()
        for t in shots:
            t.join(timeout=120)
        yield Run(demo, result, log)
    finally:
        demo.lab.down()


def _server_node(run: Run, name: str) -> dict[str, Any]:
    return next(n for n in run.demo.lab.api().nodes() if n["name"] == name)


def test_the_job_for_b_reimaged_its_node_and_ran_on_b(run: Run) -> None:
    row = run.result.rows[0]
    b = run.result.images["debian13"]
    out = run.result.outputs[row.record.job_id]
    assert 'VERSION_ID="13"' in out and "trixie" in out
    assert re.search(rf"GLIBC {re.escape(b.glibc)}\b|\b{re.escape(b.glibc)}$", out, re.M), out
    assert row.reimaged
    node = _server_node(run, row.record.node)
    assert (node["state"], node["current_image"]) == ("ready", b.name)
    slurm = run.demo.ctl.client().node(row.record.node)
    assert "os=debian13" in slurm.active_features and f"libc={b.glibc}" in slurm.active_features


def test_the_reimage_went_through_every_stage_in_order(run: Run) -> None:
    row = run.result.rows[0]
    stages = [str(e["to_state"]) for e in row.record.events]
    assert [s for s in stages if s in STAGES] == STAGES
    assert stages[-1] == "done"
    segs = dict(row.segments)
    for name in ("scheduling", "reboot → live env", "transfer", "write", "kexec → OS up"):
        assert segs.get(name, 0) > 0, (name, row.segments)
    assert sum(segs.values()) == pytest.approx(row.total)


def test_the_job_for_a_started_on_an_a_node_with_no_reimage(run: Run) -> None:
    row = run.result.rows[1]
    a = run.result.images["debian12"]
    assert not row.reimaged
    assert row.record.node != run.result.rows[0].record.node
    assert 'VERSION_ID="12"' in run.result.outputs[row.record.job_id]
    assert _server_node(run, row.record.node)["current_image"] == a.name
    # No deployment was made for it: the server's events after its submit say nothing about that node.
    later = [e for e in run.result.events if e.get("node") == row.record.node and e.get("kind") == "stage"]
    assert later == []


def test_the_libc_job_went_to_the_node_that_runs_b(run: Run) -> None:
    row = run.result.rows[2]
    assert row.record.label == f"libc:{run.result.images['debian13'].glibc}"
    assert not row.reimaged and row.record.node == run.result.rows[0].record.node
    assert 'VERSION_ID="13"' in run.result.outputs[row.record.job_id]


def test_the_table_accounts_for_every_second(run: Run) -> None:
    for row in run.result.rows:
        assert row.total is not None and row.total >= 0
        assert sum(s for _, s in row.segments) == pytest.approx(row.total)
    assert any("Where each job's start delay went" in line for line in run.log)


def test_a_digest_mismatch_drains_the_node_and_the_job_runs_elsewhere(run: Run) -> None:
    """The catalogue's digest for A stops matching: the node Slurm picks fails at verify with its disk
    untouched (it boots its old OS again), is drained with the reason, and the job runs on the A node."""
    demo, ctl, api = run.demo, run.demo.ctl, run.demo.lab.api()
    a = run.result.images["debian12"]
    b_node = run.result.rows[0].record.node
    a_node = run.result.rows[1].record.node
    manifest = demo.lab.catalogue_dir / f"{a.name}.toml"
    bad = hashlib.sha256(b"not the image").hexdigest()
    manifest.write_text(manifest.read_text().replace(a.sha256, bad))
    api.sync_images()
    # The A node is busy, so Slurm reimages the (idle) B node for the next os:A job.
    busy = ctl.sbatch("--constraint=os:debian12", "--wrap", "sleep 60", chdir="/root")
    wait_until(lambda: _job_state(run, busy) == "RUNNING", 120, f"job {busy} running")
    job = ctl.sbatch("--constraint=os:debian12", "--output=/root/cmt-demo-%j.out", "--wrap",
                     "cat /etc/os-release", chdir="/root")  # fmt: skip

    failed = wait_until(
        lambda: (n := _server_node(run, b_node))["state"] == "failed" and n, 900, f"{b_node} failed"
    )
    assert "verify" in str(failed["reason"]) and "sha256" in str(failed["reason"]).lower()
    drained = wait_until(
        lambda: (n := ctl.client().node(b_node)).drained and n, 120, f"{b_node} drained in Slurm"
    )
    assert drained.reason.startswith("cmt: reimage to") and "verify" in drained.reason
    # The job does not run on the failed node: it waits, then runs on the A node once that is free.
    wait_until(lambda: _job_state(run, job) in ("RUNNING", "COMPLETED"), 600, f"job {job} to run")
    info = next(j for j in ctl.client().jobs() if j.job_id == job)
    assert info.nodes == (a_node,)
    assert 'VERSION_ID="12"' in demo.job_output(job, a_node)
    # Nothing half-done: no deployment left running, and the server knows the old disk (B) is intact
    # (the failure came before the write). Booting it again from the firmware is the images' business:
    # they carry no boot loader yet (see docs/demo.md).
    node = api.node(b_node)
    assert not [d for d in node.get("deployments") or [] if d.get("ended") is None], node
    assert node["current_image"] == run.result.images["debian13"].name


def _job_state(run: Run, job_id: int) -> str:
    job = next((j for j in run.demo.ctl.client().jobs() if j.job_id == job_id), None)
    return job.state if job else "gone"
