"""``make demo``: a whole virtual cluster where ``sbatch --constraint=os:...`` reimages a node, for real.

    python -m cmt_slurm.lab.demo [--nodes 3] [--no-keep] [--workdir .lab]

Builds (or reuses) the live env and the Debian 12 (A) and 13 (B) images, brings the lab up with a Slurm
controller, lets every blank VM be discovered over LLDP and installed with A (the real flow: iPXE → live
env → qcow2 → kexec → slurmd registers), then submits the three jobs of the scenario and prints where each
job's start delay went. Nothing is simulated: Slurm, the boot server, dnsmasq, iPXE, the live reimager,
qemu-img, kexec and slurmd inside each VM.
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import BackendError, CmtError
from .demo_watch import EventFeed, Follower, JobWatch
from .lab import Lab
from .slurmctl import LabController
from .timeline import Breakdown, JobRecord, breakdown, render_table

DEFAULT_WORKDIR = Path(".lab")
JOB_WRAP = "cat /etc/os-release; ldd --version | head -1"
#: Where a job's output lands on its node (nodes share no filesystem with the controller).
OUTPUT = "/root/cmt-demo-%j.out"
#: The CLI of the interpreter running the demo (``make`` installs it in .venv; it need not be on PATH).
CMT = str(Path(sys.executable).with_name("cmt")) if Path(sys.executable).with_name("cmt").exists() else "cmt"
#: Node, state, active features (the image it runs), available features (every image it can run).
SINFO_FORMAT = "%9N %11T %55b %f"


@dataclass
class DemoOptions:
    nodes: int = 3
    image_a: str = "debian12"
    image_b: str = "debian13"
    workdir: Path = DEFAULT_WORKDIR
    keep: bool = True
    memory_mb: int = 1536
    #: Seconds for the initial install of every node, and for each job to start.
    install_timeout: float = 900.0
    job_timeout: float = 600.0
    out: Callable[[str], None] = print
    on_stage: Callable[[JobWatch, str], None] | None = None


@dataclass
class DemoResult:
    lab: Lab
    ctl: LabController
    images: dict[str, Any]
    rows: list[Breakdown] = field(default_factory=list)
    outputs: dict[int, str] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)


class Demo:
    def __init__(self, opts: DemoOptions):
        self.o = opts
        self.out = opts.out
        self.t0 = time.monotonic()
        self.lab = Lab(opts.workdir, memory_mb=opts.memory_mb)
        self.ctl = LabController.for_lab(self.lab, opts.nodes)
        self.lab.server_settings = dict(self.ctl.server_settings)
        self.names = [n.name for n in self.ctl.nodes]

    def say(self, text: str) -> None:
        self.out(f"[{time.monotonic() - self.t0:7.1f} s] {text}")

    # -- 1. build -----------------------------------------------------------------------------------
    def build(self) -> tuple[Any, dict[str, Any]]:
        from . import images  # noqa: PLC0415 - image builds import the builders

        t = time.monotonic()
        live = images.ensure_live_env()
        built = {}
        for name in (self.o.image_a, self.o.image_b):
            built[name] = images.ensure_image(name, self.lab.catalogue_dir)
        first_run = live.base_build_seconds + sum(i.build_seconds for i in built.values())
        now = "built now" if live.built_now or any(i.built_now for i in built.values()) else "all cached"
        self.say(
            f"images ({now}, {time.monotonic() - t:.1f} s this run; "
            f"the first-run build took {first_run:.0f} s: "
            f"live env {live.base_build_seconds:.0f} s, "
            + ", ".join(f"{n} {i.build_seconds:.0f} s" for n, i in built.items())
            + ")"
        )
        for name, img in built.items():
            self.say(f"  {name}: {img.name}, glibc {img.glibc}, kernel {img.kernel_release}, "
                     f"qcow2 {img.size / 1e6:.0f} MB")  # fmt: skip
        return live, built

    # -- 2. lab + controller ------------------------------------------------------------------------
    def up(self, live_dir: Path) -> None:
        from ..catalogue import load_catalogue  # noqa: PLC0415

        if self.lab.is_up():
            self.say(f"a lab is up in {self.lab.workdir}: taking it down for a fresh demo")
            self.lab.down()
        self.ctl.prepare(load_catalogue(self.lab.catalogue_dir))
        self.lab.up(self.o.nodes, live_dir=live_dir, hooks=[self.ctl.start], log=self.say)
        self.say(
            f"slurmctld up on {self.ctl.addr} (configless; {len(self.names)} nodes: {', '.join(self.names)})"
        )

    # -- 3. discover + install image A ---------------------------------------------------------------
    def install_all(self, image: str, os_tag: str) -> float:
        """Every blank VM: PXE → discover (LLDP names it) → target ``image`` → installed, slurmd idle."""
        api = self.lab.api()
        t = time.monotonic()
        targeted: set[str] = set()
        deadline = t + self.o.install_timeout
        self.say(f"waiting for {len(self.names)} blank VMs to network-boot and register (LLDP naming)")
        while len(targeted) < len(self.names):
            for node in api.nodes():
                name = str(node["name"])
                if name in self.names and name not in targeted:
                    where = f"{node.get('lldp_switch')} port {node.get('lldp_port')}"
                    self.say(f"  {name} registered from {where} → installing {image}")
                    api.set_target(name, image)
                    targeted.add(name)
            if time.monotonic() > deadline:
                raise BackendError(
                    f"demo: only {sorted(targeted)} registered", hint="cmt lab console vm1 --log"
                )
            time.sleep(2)
        done: set[str] = set()
        while len(done) < len(self.names):
            for node in api.nodes():
                name = str(node["name"])
                if name in self.names and name not in done:
                    if node["state"] == "failed":
                        raise BackendError(f"demo: installing {name} failed: {node.get('reason')}")
                    if node["state"] == "ready" and node.get("current_image") == image:
                        self.say(f"  {name} runs {image} ({time.monotonic() - t:.0f} s)")
                        done.add(name)
            if time.monotonic() > deadline:
                raise BackendError(f"demo: install of {image} not done on {sorted(set(self.names) - done)}")
            time.sleep(2)
        self.ctl.wait_nodes_idle(self.names, max(60.0, deadline - time.monotonic()), [f"os={os_tag}"])
        took = time.monotonic() - t
        self.say(f"all {len(self.names)} nodes run {image} and their slurmd are idle ({took:.0f} s)")
        return took

    def sinfo(self) -> str:
        return self.ctl.run("sinfo", "-N", "-o", SINFO_FORMAT).stdout

    # -- 4. jobs ------------------------------------------------------------------------------------
    def submit_and_follow(self, follower: Follower, label: str, constraint: str) -> JobRecord:
        job_id = self.ctl.sbatch(f"--constraint={constraint}", f"--output={OUTPUT}", "--wrap", JOB_WRAP,
                                 chdir="/root")  # fmt: skip
        self.say(f"sbatch --constraint={constraint} --wrap {shlex.quote(JOB_WRAP)}  → job {job_id}")
        watch = JobWatch(job_id, label, time.time())
        rec = follower.follow(watch, self.o.job_timeout)
        how = "after a reimage" if rec.events else "with no reimage"
        self.say(f"job {job_id} started on {rec.node} {how}, {rec.started - rec.submitted:.1f} s after sbatch"
                 if rec.started else f"job {job_id} did not start")  # fmt: skip
        return rec

    def job_output(self, job_id: int, node: str, timeout: float = 120.0) -> str:
        """The job's output file, read on its node by a one-task srun (nodes share no filesystem here)."""
        self.wait_done(job_id, timeout)
        path = OUTPUT.replace("%j", str(job_id))
        argv = ["srun", f"--nodelist={node}", "-N1", "-n1", "--time=2", "--chdir=/root", "cat", path]
        res = self.ctl.run(*argv, check=False, timeout=timeout)
        if not res.ok:
            raise BackendError(f"demo: cannot read {path} on {node}: {res.stderr.strip()}")
        return res.stdout

    def wait_done(self, job_id: int, timeout: float) -> str:
        cli = self.ctl.client()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = next((j for j in cli.jobs() if j.job_id == job_id), None)
            if job is None or job.state not in ("PENDING", "CONFIGURING", "RUNNING", "COMPLETING"):
                return job.state if job else "gone"
            time.sleep(1)
        raise BackendError(f"demo: job {job_id} still running after {timeout:.0f} s")

    # -- the scenario -------------------------------------------------------------------------------
    def run(self) -> DemoResult:
        live, built = self.build()
        a, b = built[self.o.image_a], built[self.o.image_b]
        self.up(live.directory)
        result = DemoResult(self.lab, self.ctl, built)
        result.timings["install_s"] = self.install_all(a.name, a.os)
        self.out(f"\n$ sinfo -N -o '{SINFO_FORMAT}'\n" + self.sinfo())
        api = self.lab.api()
        events = api.events(limit=1)
        feed = EventFeed(api, int(events[-1]["id"]) if events else None)
        follower = Follower(api, self.ctl.client(), feed, self.out, self.o.on_stage)
        plan = [
            (f"os:{b.os}", f"os:{b.os}", True),
            (f"os:{a.os}", f"os:{a.os}", False),
            (f"libc:{b.glibc}", f"libc:{b.glibc}", False),
        ]
        for label, constraint, show in plan:
            self.out("")
            rec = self.submit_and_follow(follower, label, constraint)
            note = "reimaged" if rec.events else "no reimage: the node already ran the image"
            result.rows.append(breakdown(dataclasses.replace(rec, note=note)))
            if show:
                result.outputs[rec.job_id] = text = self.job_output(rec.job_id, rec.node)
                self.out(f"--- output of job {rec.job_id} (on {rec.node}) ---\n{text.rstrip()}\n---")
        for row in result.rows[1:]:
            result.outputs[row.record.job_id] = self.job_output(row.record.job_id, row.record.node)
        result.events = feed.seen
        self.out(f"\n$ sinfo -N -o '{SINFO_FORMAT}'\n" + self.sinfo())
        self.out("Where each job's start delay went (seconds):\n" + render_table(result.rows))
        return result

    def finish(self, keep: bool) -> None:
        if keep:
            self.out(f"The lab stays up. Dashboard: {self.lab.host_url}/\n"
                     f"  Slurm:   ip netns exec {self.lab.net.netns} "
                     f"env SLURM_CONF={self.ctl.layout.client_conf} sinfo\n"
                     f"  console: {CMT} lab console node2 --workdir {self.o.workdir}\n"
                     f"  stop:    {CMT} lab down --workdir {self.o.workdir}")  # fmt: skip
        else:
            self.lab.down()
            self.out("lab down (DEMO_KEEP=0)")
        self.say("demo finished")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cmt_slurm.lab.demo", description=__doc__.split("\n")[0])
    parser.add_argument("--nodes", type=int, default=3, help="VM nodes (at least 2)")
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR, help="the lab's directory")
    parser.add_argument("--no-keep", action="store_true", help="tear the lab down at the end")
    args = parser.parse_args(argv)
    demo = Demo(DemoOptions(nodes=max(2, args.nodes), workdir=args.workdir, keep=not args.no_keep))
    try:
        demo.run()
    except CmtError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"hint: {exc.hint}", file=sys.stderr)
        print(f"logs: {demo.lab.logs}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        demo.finish(keep=not args.no_keep)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
