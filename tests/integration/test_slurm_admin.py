"""Admin paths on real Slurm with the real server: pre-provisioning without a job, and the helper's cost."""

import http.server
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from slurm.fixtures import need_slurm
from slurm.lab import Lab, start_lab

from cmt_slurm.agent import hooks_helper, nodefile
from cmt_slurm.runner import SubprocessRunner
from cmt_slurm.slurm.client import PrefixedRunner, SlurmCli
from cmt_slurm.slurm.reimage import reimage_node


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    need_slurm()
    lb = start_lab(tmp_path / "lab", {"n1": "debian12-2026.11", "n2": "rocky8-2026.10"})
    yield lb
    lb.stop()


class ProvisionerTargets:
    """The server's set_target through its service layer (the server itself listens in the namespace)."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab

    def set_target(self, name: str, image: str) -> dict[str, Any]:
        return {"deployment": self.lab.server.prov.set_target(name, image, "admin").as_dict()}


@pytest.mark.slurm
def test_admin_reimage_waits_for_the_running_job_then_reimages(lab: Lab) -> None:
    c = lab.cluster
    slurm = SlurmCli(PrefixedRunner(SubprocessRunner(), c.wrap([]), {"SLURM_CONF": str(c.slurm_conf)}))
    running = c.sbatch("-w", "n1", script="#!/bin/sh\nsleep 4\n. /etc/os-release; echo $ID\n")
    c.wait_job(running, ["RUNNING"], 20)
    dep = reimage_node(ProvisionerTargets(lab), slurm, "n1", "rocky9-2026.11", when="idle")
    assert dep["image"] == "rocky9-2026.11"
    assert slurm.node("n1").drained  # ASAP: no new job lands on it meanwhile
    c.wait_job(running, ["COMPLETED"], 30)
    assert c.job_output(running).strip() == "debian12"  # the running job finished on the old image
    c.wait_nodes(lambda n: "os=rocky9" in n["active_features"] and not n["state_flags"], 90, ["n1"])
    srv = lab.server.node("n1")
    assert (srv["state"], srv["current_image"]) == ("ready", "rocky9-2026.11")
    after = c.sbatch("--constraint=os:rocky9", script="#!/bin/sh\n. /etc/os-release; echo $ID; hostname\n")
    c.wait_job(after, ["COMPLETED"], 30)
    assert c.job_output(after).split() == ["rocky9", "n1"]


@pytest.mark.slurm
def test_epilog_policy_default_returns_the_node_to_the_default_image(tmp_path: Path) -> None:
    need_slurm()
    lb = start_lab(tmp_path / "epi", {"n1": "debian12-2026.11"}, epilog_policy="default")
    try:
        c = lb.cluster
        assert "EpilogSlurmctld=" in (c.conf_dir / "cmt-slurm.conf").read_text()
        job = c.sbatch("--constraint=os:rocky8", script="#!/bin/sh\n. /etc/os-release; echo $ID\n")
        c.wait_job(job, ["COMPLETED"], 90)
        assert c.job_output(job).strip() == "rocky8"
        # After the job: back to the site default (debian12-2026.11) once idle, and in service again.
        c.wait_nodes(lambda n: "os=debian12" in n["active_features"] and not n["state_flags"], 90, ["n1"])
        assert lb.server.node("n1")["current_image"] == "debian12-2026.11"
    finally:
        lb.stop()


def test_helper_without_argument_imports_only_the_standard_library(tmp_path: Path) -> None:
    node_json = tmp_path / "node.json"
    node_json.write_text(json.dumps({"node": "n1", "image": "debian12-2026.11", "features": ["os=debian12"]}))
    probe = (
        "import sys, json; base = set(sys.modules)\n"
        "from cmt_slurm.agent import hooks_helper\n"
        "hooks_helper.main([])\n"
        "print(json.dumps(sorted(set(sys.modules) - base)), file=sys.stderr)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-I", "-c", probe], env={"CMT_NODE_FILE": str(node_json), "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert proc.stdout.splitlines() == ["os=debian12", "image=debian12_2026.11"]
    loaded = json.loads(proc.stderr.strip().splitlines()[-1])
    ours = [m for m in loaded if m.startswith("cmt_slurm")]
    assert ours == [
        "cmt_slurm",
        "cmt_slurm.agent",
        "cmt_slurm.agent.hooks_helper",
        "cmt_slurm.agent.nodefile",
    ]
    heavy = {
        "http",
        "urllib",
        "ssl",
        "email",
        "argparse",
        "dataclasses",
        "inspect",
        "click",
        "flask",
        "sqlalchemy",
    }
    assert not [m for m in loaded if m.split(".")[0] in heavy]
    assert len(loaded) < 25, loaded


class _SlowHandler(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        time.sleep(3)  # longer than the helper's budget in the test
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_helper_against_a_slow_server_records_the_failure_and_returns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _SlowHandler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        node_json = tmp_path / "node.json"
        url = f"http://127.0.0.1:{srv.server_address[1]}"
        node_json.write_text(json.dumps({"node": "n1", "image": "x", "server": url, "token": "t"}))
        monkeypatch.setenv("CMT_NODE_FILE", str(node_json))
        monkeypatch.setenv("CMT_REQUEST_FILE", str(tmp_path / "request.json"))
        assert hooks_helper.record_and_send("os=rocky9", timeout=0.5) == 0
        with nodefile.locked_request() as req:
            assert (req.features, req.sent) == (["os=rocky9"], False)
            assert req.error is not None and "timed out" in req.error
    finally:
        srv.shutdown()
        srv.server_close()
