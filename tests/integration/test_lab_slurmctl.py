"""The lab's Slurm controller, for real: munged + slurmctld in the lab namespace on the bridge, configless.

A slurmd started in its own mount/UTS namespace (host name ``node1``, nothing of Slurm's config on disk,
munge's default socket path bind-mounted to the lab's) fetches slurm.conf *and* helpers.conf from the
controller with ``--conf-server`` and registers with the features its helper prints, the way a VM's slurmd
does. Then a job runs on it and the lab comes down leaving nothing behind.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cmt_slurm.catalogue import load_catalogue
from cmt_slurm.lab import procs
from cmt_slurm.lab.lab import Lab
from cmt_slurm.lab.slurmctl import CTL_PORT, LabController, LabNode
from cmt_slurm.provisioner.site_files import load_site_files
from tests.conftest import REPO, need_binary, need_root

pytestmark = [
    pytest.mark.slurm,
    pytest.mark.netns,
    # The lab's daemons are detached on purpose (procs.spawn); their Popen objects die before they do.
    pytest.mark.filterwarnings("ignore:subprocess \\d+ is still running:ResourceWarning"),
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]

# The node side: its own /run (munge's default socket → the lab's munged), spool, log and helper wrappers.
_NODE_SHELL = r"""set -e
hostname node1
d="$1"; munge="$2"; shift 2
mount -t tmpfs tmpfs /run
mkdir -p /run/munge /var/spool/slurmd
mount --bind "$munge" /run/munge
mount --bind "$d/spool" /var/spool/slurmd
mount --bind "$d/log" /var/log/slurm
mount --bind "$d/sbin" /usr/local/sbin
exec "$@"
"""


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    need_root("the lab controller test")
    need_binary("ip", "munged", "slurmctld", "slurmd", "sbatch", "dnsmasq", "lldpd", "qemu-img")
    # Not under tmp_path: lldpcli drops root and must reach the lab's socket (pytest's tmp is 0700).
    workdir = REPO / "tests" / "artifacts" / f"slurmctl-{time.strftime('%Y%m%d-%H%M%S')}"
    workdir.mkdir(parents=True)
    lab_ = Lab(workdir)
    try:
        yield lab_
    finally:
        lab_.down()


def test_configless_slurmd_gets_conf_and_helpers_from_the_lab_controller(lab: Lab, tmp_path: Path) -> None:
    cat = load_catalogue(REPO / "tests" / "data" / "catalogue")
    # The host's cgroups (v1 here) stand in for the VM's: no cgroup.conf for the VMs' v2.
    ctl = LabController(lab, [LabNode("node1", lab.net.host_ip)], cgroup_conf=None)
    ctl.prepare(cat)
    files = {f["path"]: f for f in load_site_files(ctl.layout.site_files)}
    assert set(files) == {
        "/etc/munge/munge.key",
        "/etc/default/slurmd",
        "/usr/local/sbin/cmt-node-helper",
        "/usr/local/sbin/cmt-node-reboot",
        "/etc/systemd/system/serial-getty@ttyS0.service.d/cmt-lab-autologin.conf",
    }
    assert (files["/etc/munge/munge.key"]["mode"], files["/etc/munge/munge.key"]["owner"]) == (
        "0400",
        "munge:munge",
    )
    lab.up(1, start_vms=False, with_server=False, hooks=[ctl.start])
    assert ctl.ping()

    node = tmp_path / "node"
    for sub in ("spool", "log", "sbin"):
        (node / sub).mkdir(parents=True)
    helper = node / "sbin" / "cmt-node-helper"
    # Stands in for `cmt-node helper`: prints the active features (the real one reads /etc/cmt/node.json).
    helper.write_text('#!/bin/sh\n[ -n "$1" ] && exit 0\necho os=debian12\necho libc=2.36\n')
    helper.chmod(0o755)
    slurmd = lab.start_service(
        "test-slurmd",
        # nsenter, not `ip netns exec`: that remounts /sys, hiding the host's cgroups slurmd needs.
        ["nsenter", f"--net=/run/netns/{lab.net.netns}", "--", "unshare", "--mount", "--uts", "--propagation", "private", "--", "sh", "-c", _NODE_SHELL, "sh",
         str(node), str(ctl.layout.munge_dir), "slurmd", "-D", "--conf-server", f"{lab.net.host_ip}:{CTL_PORT}"],
        in_netns=False,
    )  # fmt: skip
    try:
        ctl.wait_nodes_idle(["node1"], 60)
    except Exception:
        print(Path(slurmd.log).read_text(errors="replace")[-3000:], file=sys.stderr)
        raise
    info = ctl.client().node("node1")
    assert "os=debian12" in info.active_features and "libc=2.36" in info.active_features
    # Every catalogue os is available (helpers features), only the helper's answer is active.
    assert {"os=debian12", "os=debian13", "os=rocky9"} <= set(info.features)
    assert "os=debian13" not in info.active_features
    # The configless cache on the node holds what the controller serves.
    cached = list((node / "spool").rglob("helpers.conf"))
    assert cached and "Feature=os=debian13" in cached[0].read_text()

    job = ctl.sbatch("--constraint=os:debian12", "--wrap", "hostname", chdir="/tmp")
    deadline = time.monotonic() + 60
    state = ""
    while time.monotonic() < deadline:
        jobs = {j.job_id: j for j in ctl.client().jobs()}
        state = jobs[job].state if job in jobs else "gone"
        if state in ("COMPLETED", "FAILED"):
            break
        time.sleep(0.5)
    assert state == "COMPLETED"

    # An unknown os is refused at submit, by the cmt job_submit.lua the controller loaded.
    res = ctl.run("sbatch", "--constraint=os:nosuchos", "--wrap", "true", check=False)
    assert res.returncode != 0 and "nosuchos" in res.stderr

    lab.down()
    assert not procs.alive(slurmd)
    leftover = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    assert lab.net.netns not in leftover
    assert json.loads(json.dumps(lab.status()))["up"] is False
