"""A real Slurm cluster on one machine, for integration tests: munged, slurmctld and N ``slurmd -N``.

Everything runs inside a private network namespace (slurmctld always binds INADDR_ANY; in its own
namespace that is only that namespace's loopback). Each slurmd also gets its own mount and UTS
namespace, so a job sees its node's hostname, ``/etc/os-release``, ``/etc/cmt`` and ``/var/lib/cmt``
(bind-mounted from the node's directory under the cluster root).

Teardown is by PID: every process whose network namespace is ours is killed (that covers slurmd
instances a lab reboot restarted, slurmstepd and job processes), then the namespace is deleted.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SLURM_LIBDIR = Path("/usr/lib/x86_64-linux-gnu/slurm-wlm")
BINARIES = (
    "munged",
    "slurmctld",
    "slurmd",
    "sbatch",
    "sinfo",
    "squeue",
    "scontrol",
    "ip",
    "nsenter",
    "unshare",
)

# Per node: hostname, bind mounts, then exec slurmd. Arguments come positionally: never interpolated.
_NODE_SHELL = r"""set -e
hostname "$1"
d="$2"
mount --bind "$d/hostname" /etc/hostname
mount --bind "$d/os-release" /etc/os-release
mount --bind "$d/etc-cmt" /etc/cmt
mount --bind "$d/var-lib-cmt" /var/lib/cmt
shift 2
exec "$@"
"""


def free_port() -> int:
    # Ports are only used inside our namespace, but picking them on the host keeps them unique per run.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def os_release_text(os_id: str, version_id: str, pretty: str) -> str:
    return f'PRETTY_NAME="{pretty}"\nNAME="{pretty}"\nID={os_id}\nVERSION_ID="{version_id}"\n'


@dataclass
class NodeSpec:
    name: str
    #: Text of the node's /etc/os-release.
    os_release: str = os_release_text("debian", "12", "Debian GNU/Linux 12 (bookworm)")
    #: The node's /etc/cmt/node.json (None: no file, as on a node never provisioned by cmt).
    node_json: dict[str, Any] | None = None
    #: ``Features=`` of its NodeName line (empty: none).
    features: str = ""
    cpus: int = 1
    #: Extra environment of this node's slurmd (its helper and RebootProgram inherit it).
    env: Mapping[str, str] = field(default_factory=dict)


@dataclass
class MiniCluster:
    root: Path
    nodes: Sequence[NodeSpec]
    #: slurm.conf lines appended after the generated ones (e.g. ``Include .../cmt-slurm.conf``).
    extra_conf: str = ""
    #: Files written beside slurm.conf (helpers.conf, job_submit.lua, cmt_catalogue.lua, ...).
    conf_files: Mapping[str, str] = field(default_factory=dict)
    #: Environment added to every daemon (slurmd passes it to the helper and the RebootProgram).
    daemon_env: Mapping[str, str] = field(default_factory=dict)
    resume_timeout: int = 60

    netns: str = ""
    _procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    _started: bool = False

    # ---- paths
    @property
    def conf_dir(self) -> Path:
        return self.root / "etc"

    @property
    def slurm_conf(self) -> Path:
        return self.conf_dir / "slurm.conf"

    @property
    def log_dir(self) -> Path:
        return self.root / "log"

    def node_dir(self, name: str) -> Path:
        return self.root / "nodes" / name

    @property
    def netns_path(self) -> str:
        return f"/run/netns/{self.netns}"

    @property
    def env(self) -> dict[str, str]:
        """Environment for Slurm clients (sbatch, sinfo, ...) talking to this cluster."""
        return {**os.environ, "SLURM_CONF": str(self.slurm_conf)}

    def wrap(self, argv: Sequence[str]) -> list[str]:
        """``argv`` run inside the cluster's network namespace."""
        return ["nsenter", f"--net={self.netns_path}", "--", *argv]

    # ---- lifecycle
    def write_config(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o755)  # munged wants its socket directory reachable by all
        for d in (self.conf_dir, self.log_dir, self.root / "state", self.root / "run", self.root / "spool"):
            d.mkdir(parents=True, exist_ok=True)
        self._ctl_port, self._node_ports = free_port(), {n.name: free_port() for n in self.nodes}
        self.munge_socket = self.root / "run" / "munge.socket"
        lines = [
            "ClusterName=cmt",
            "SlurmctldHost=ctl(127.0.0.1)",
            f"SlurmctldPort={self._ctl_port}",
            "AuthType=auth/munge",
            "CredType=cred/munge",
            f"AuthInfo=socket={self.munge_socket}",
            "SlurmUser=root",
            "SlurmdUser=root",
            f"StateSaveLocation={self.root / 'state'}",
            f"SlurmdSpoolDir={self.root / 'spool'}/%n",
            f"SlurmctldPidFile={self.root / 'run'}/slurmctld.pid",
            f"SlurmdPidFile={self.root / 'run'}/slurmd-%n.pid",
            f"SlurmctldLogFile={self.log_dir}/slurmctld.log",
            f"SlurmdLogFile={self.log_dir}/slurmd-%n.log",
            "SlurmctldDebug=info",
            "SlurmdDebug=info",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "MpiDefault=none",
            "SwitchType=switch/none",
            "JobAcctGatherType=jobacct_gather/none",
            "AccountingStorageType=accounting_storage/none",
            "JobCompType=jobcomp/none",
            "SchedulerType=sched/backfill",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_CPU",
            "ReturnToService=2",
            "SlurmdTimeout=300",
            "InactiveLimit=0",
            "MinJobAge=300",
            "KillWait=2",
            f"ResumeTimeout={self.resume_timeout}",
        ]
        for n in self.nodes:
            feat = f" Features={n.features}" if n.features else ""
            lines.append(
                f"NodeName={n.name} NodeHostname={n.name} NodeAddr=127.0.0.1 Port={self._node_ports[n.name]}"
                f" CPUs={n.cpus}{feat} State=UNKNOWN"
            )
        lines.append("PartitionName=all Nodes=ALL Default=YES MaxTime=INFINITE State=UP")
        text = "\n".join(lines) + "\n"
        if self.extra_conf:
            text += self.extra_conf.rstrip("\n") + "\n"
        self.slurm_conf.write_text(text)
        for name, body in self.conf_files.items():
            (self.conf_dir / name).write_text(body)
            if body.startswith("#!"):
                (self.conf_dir / name).chmod(0o755)
        for n in self.nodes:
            (self.root / "spool" / n.name).mkdir(exist_ok=True)
            self.set_identity(n.name, n.os_release, n.node_json)

    def set_identity(self, name: str, os_release: str, node_json: dict[str, Any] | None) -> None:
        """Write a node's identity files; in place, so that existing bind mounts see the new content."""
        d = self.node_dir(name)
        for sub in ("etc-cmt", "var-lib-cmt"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        (d / "hostname").write_text(name + "\n")
        (d / "os-release").write_text(os_release)
        nj = d / "etc-cmt" / "node.json"
        if node_json is None:
            nj.unlink(missing_ok=True)
        else:
            nj.write_text(json.dumps(node_json, indent=2) + "\n")

    def start(self, timeout: float = 30) -> None:
        self.write_config()
        self.netns = f"cmt-slurm-{secrets.token_hex(4)}"
        subprocess.run(["ip", "netns", "add", self.netns], check=True)
        self._started = True
        # glibc's getaddrinfo(AI_ADDRCONFIG), which Slurm uses, refuses even "127.0.0.1" on a host with no
        # non-loopback IPv4 address: give the namespace one, on a veth pair that leads nowhere.
        ns = ["ip", "-n", self.netns]
        for cmd in (
            ["link", "set", "lo", "up"],
            ["link", "add", "cmt0", "type", "veth", "peer", "name", "cmt1"],
            ["addr", "add", "10.254.254.1/30", "dev", "cmt0"],
            ["link", "set", "cmt0", "up"],
            ["link", "set", "cmt1", "up"],
        ):
            subprocess.run([*ns, *cmd], check=True)
        for p in ("/etc/cmt", "/var/lib/cmt"):
            Path(p).mkdir(parents=True, exist_ok=True)  # mount points for the per-node bind mounts
        key = self.root / "run" / "munge.key"
        key.write_bytes(secrets.token_bytes(1024))
        key.chmod(0o600)
        self._spawn(
            [
                "munged", "--foreground", "--force", f"--key-file={key}", f"--socket={self.munge_socket}",
                f"--pid-file={self.root / 'run' / 'munged.pid'}", f"--log-file={self.log_dir / 'munged.log'}",
                f"--seed-file={self.root / 'run' / 'munge.seed'}",
            ],
            "munged",
        )  # fmt: skip
        _wait_for(self.munge_socket.exists, 10, "munged socket")
        ctl = ["unshare", "--uts", "--", "sh", "-c", 'hostname ctl; exec "$@"', "sh", "slurmctld", "-D", "-i"]
        self._spawn(ctl, "slurmctld")
        self.wait_controller(timeout)
        for n in self.nodes:
            self.start_slurmd(n.name)
        self.wait_nodes(node_ready, timeout)

    def slurmd_argv(self, name: str) -> list[str]:
        return ["slurmd", "-N", name]

    def start_slurmd(self, name: str, boot: bool = False) -> None:
        spec = next(n for n in self.nodes if n.name == name)
        env = {
            **spec.env,
            "CMT_LAB_SLURMD_ARGV": json.dumps(self.slurmd_argv(name)),
            "CMT_LAB_SLURMD_PIDFILE": str(self.root / "run" / f"slurmd-{name}.pid"),
            # A test writes "<stage>: <message>" there to make this node's next lab reimage fail.
            "CMT_LAB_FAIL": str(self.node_dir(name) / "lab-fail"),
        }
        argv = [
            "unshare", "--mount", "--uts", "--propagation", "private", "--",
            "sh", "-c", _NODE_SHELL, "sh", name, str(self.node_dir(name)),
            *self.slurmd_argv(name), "-D", *(["-b"] if boot else []),
        ]  # fmt: skip
        self._spawn(argv, f"slurmd-{name}", env)

    def _spawn(self, argv: list[str], label: str, extra_env: Mapping[str, str] | None = None) -> None:
        env = {**os.environ, **self.daemon_env, **(extra_env or {}), "SLURM_CONF": str(self.slurm_conf)}
        out = (self.log_dir / f"{label}.out").open("ab")
        proc = subprocess.Popen(
            self.wrap(argv), env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        out.close()
        self._procs.append(proc)

    def stop(self) -> None:
        if not self._started:
            return
        # Our processes are exactly those in our network namespace, plus the ones we spawned.
        pids = set(self.namespace_pids()) | {p.pid for p in self._procs if p.poll() is None}
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and any(_alive(p) for p in pids):
                for p in self._procs:
                    p.poll()
                time.sleep(0.05)
            pids = {p for p in pids if _alive(p)} | set(self.namespace_pids())
            if not pids:
                break
        for p in self._procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=2)
        subprocess.run(["ip", "netns", "delete", self.netns], check=False)
        self._started = False

    def namespace_pids(self) -> list[int]:
        try:
            target = os.stat(self.netns_path)
        except FileNotFoundError:
            return []
        found = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                st = os.stat(f"/proc/{entry}/ns/net")
            except OSError:
                continue
            if (st.st_dev, st.st_ino) == (target.st_dev, target.st_ino):
                found.append(int(entry))
        return found

    def __enter__(self) -> MiniCluster:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- clients
    def run(self, *argv: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            self.wrap(argv), env=self.env, capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} exited {proc.returncode}: {proc.stderr.strip()}")
        return proc

    def sinfo_nodes(self) -> list[dict[str, Any]]:
        return list(json.loads(self.run("sinfo", "--json").stdout)["nodes"])

    def squeue_jobs(self) -> list[dict[str, Any]]:
        return list(json.loads(self.run("squeue", "--json").stdout)["jobs"])

    def wait_controller(self, timeout: float) -> None:
        ctl = self._procs[-1]

        def up() -> bool:
            if ctl.poll() is not None:
                log = (self.log_dir / "slurmctld.log").read_text(errors="replace").splitlines()[-8:]
                raise RuntimeError(f"slurmctld exited {ctl.returncode}:\n" + "\n".join(log))
            return self.run("scontrol", "ping", check=False, timeout=10).stdout.find("UP") >= 0

        _wait_for(up, timeout, "slurmctld to answer scontrol ping", self.log_dir / "slurmctld.log")

    def wait_nodes(self, predicate: Any, timeout: float, names: Sequence[str] | None = None) -> None:
        want = set(names or [n.name for n in self.nodes])

        def ok() -> bool:
            nodes = {n["name"]: n for n in self.sinfo_nodes()}
            return all(w in nodes and predicate(nodes[w]) for w in want)

        _wait_for(ok, timeout, f"nodes {sorted(want)}", self.log_dir / "slurmctld.log")

    def node(self, name: str) -> dict[str, Any]:
        return next(n for n in self.sinfo_nodes() if n["name"] == name)

    def sbatch(self, *args: str, script: str = "#!/bin/sh\ncat /etc/hostname\n") -> int:
        path = self.root / f"job-{secrets.token_hex(3)}.sh"
        path.write_text(script)
        proc = self.run("sbatch", "--parsable", f"--chdir={self.root}", *args, str(path), check=False)
        if proc.returncode != 0:
            raise SbatchRejected(proc.stderr.strip())
        return int(proc.stdout.strip().split(";")[0])

    def job(self, job_id: int) -> dict[str, Any] | None:
        # squeue --json in 22.05 ignores -j and most other filters: filter here.
        proc = self.run("squeue", "--json", check=False)
        if proc.returncode != 0:
            return None
        return next((j for j in json.loads(proc.stdout)["jobs"] if j["job_id"] == job_id), None)

    def wait_job(self, job_id: int, states: Sequence[str], timeout: float) -> dict[str, Any]:
        seen: dict[str, Any] = {}

        def reached() -> bool:
            j = self.job(job_id)
            if j is not None:
                seen.update(j)
            return j is not None and j["job_state"] in states

        _wait_for(
            reached, timeout, f"job {job_id} to reach {'/'.join(states)} (last: {seen.get('job_state')})"
        )
        return seen

    def job_output(self, job_id: int) -> str:
        return (self.root / f"slurm-{job_id}.out").read_text()


def node_ready(node: dict[str, Any]) -> bool:
    """Registered and idle, with no flag that would keep a job off it."""
    return bool(node["state"] == "idle" and not node["state_flags"] and node.get("boot_time"))


class SbatchRejected(Exception):
    pass


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def _wait_for(cond: Any, timeout: float, what: str, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if cond():
            return
        if time.monotonic() > deadline:
            tail = ""
            if log is not None and log.exists():
                tail = "\n" + "\n".join(log.read_text(errors="replace").splitlines()[-30:])
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}{tail}")
        time.sleep(0.2)
