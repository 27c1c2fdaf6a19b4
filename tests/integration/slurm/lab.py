"""The real boot server inside a mini cluster's network namespace, and lab nodes already installed.

Hooks run inside the namespace (slurmd's helper and RebootProgram, slurmctld's prolog), so the server
must listen there. The test itself (outside) reaches the database through a ``Provisioner`` on the same
SQLite file: that is how it seeds nodes and checks states.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cmt_slurm.agent.lldp import LldpInfo
from cmt_slurm.catalogue import load_catalogue
from cmt_slurm.config import Settings, load_settings
from cmt_slurm.provisioner import Provisioner
from cmt_slurm.store import Store

from .cluster import MiniCluster, free_port, os_release_text
from .cmtconf import CATALOGUE

STAGES = ("live", "transfer", "verify", "write", "grow", "identity", "kexec")


def lab_mac(index: int) -> str:
    return f"52:54:00:c5:00:{index:02x}"


def lldp(index: int) -> LldpInfo:
    return LldpInfo(
        chassis_id="52:54:00:ff:00:01", chassis_id_subtype="mac", port_id=f"Ethernet1/{index}",
        port_id_subtype="interface-name", port_description=None, system_name="sw-lab",
        system_description=None, ttl=120, port_index=index,
    )  # fmt: skip


@dataclass
class LabServer:
    root: Path
    catalogue: Path = CATALOGUE
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    settings: Settings | None = None
    provisioner: Provisioner | None = None
    admin_token: str = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def open(self) -> LabServer:
        """Create the database and the provisioner on it (no process yet: nodes can be seeded first)."""
        self.root.mkdir(parents=True, exist_ok=True)
        data = self.root / "data"
        (data / "live").mkdir(parents=True, exist_ok=True)
        (data / "live" / "vmlinuz").write_bytes(b"lab kernel")
        (data / "live" / "initrd.img").write_bytes(b"lab initrd")
        toml = self.root / "cmt.toml"
        toml.write_text('default_name_template = "n{port_index}"\n')
        db = f"sqlite:///{self.root / 'cmt.db'}"
        overrides = {"db_url": db, "catalogue_dir": self.catalogue, "data_dir": data, "public_url": self.url}
        self.settings = load_settings(toml, env={}, overrides=overrides)
        self.provisioner = Provisioner(Store.open(db), load_catalogue(self.catalogue), self.settings)
        self.admin_token = self.provisioner.create_token("lab-admin")
        return self

    def start(self, cluster: MiniCluster, timeout: float = 60) -> None:
        """Run ``cmt server`` inside the cluster's network namespace and wait until it answers."""
        assert self.settings is not None, "open() first"
        data, toml, db = self.settings.data_dir, self.root / "cmt.toml", self.settings.effective_db_url
        argv = [
            sys.executable, "-m", "cmt_slurm", "server", "--bind", f"127.0.0.1:{self.port}", "--db", db,
            "--catalogue", str(self.catalogue), "--data", str(data), "--workers", "1", "--threads", "8",
            "--public-url", self.url,
        ]  # fmt: skip
        env = {k: v for k, v in cluster.env.items() if not k.startswith("CMT_")}
        with (self.root / "server.log").open("wb") as out:
            self.proc = subprocess.Popen(
                cluster.wrap(argv), env={**env, "CMT_CONFIG": str(toml)}, stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        probe = "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"cmt server exited: {self.log()}")
            ok = cluster.run(sys.executable, "-c", probe, self.url + "/api/v1/openapi.json", check=False)
            if ok.returncode == 0:
                return
            time.sleep(0.3)
        raise AssertionError(f"cmt server did not answer within {timeout}s: {self.log()}")

    def log(self) -> str:
        p = self.root / "server.log"
        return p.read_text(errors="replace")[-3000:] if p.exists() else ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        if self.provisioner is not None:
            self.provisioner.store.dispose()

    @property
    def prov(self) -> Provisioner:
        assert self.provisioner is not None
        return self.provisioner

    def install(self, name: str, index: int, image: str) -> tuple[str, dict[str, Any]]:
        """Register lab node ``name`` and run one complete deployment of ``image`` for it (what the
        live reimager would report); returns its os-release text and node.json."""
        prov = self.prov
        reg = prov.register_node([lab_mac(index)], lldp(index), {"serial": f"LAB{index}"}, [])
        assert reg.node.name == name, (reg.node.name, name)
        dep = prov.set_target(name, image, "test")
        assert dep.token
        plan = prov.plan(dep.id, dep.token)
        for stage in STAGES:
            prov.report(dep.id, dep.token, stage)
        prov.node_ready(name, image, datetime.now(tz=UTC), plan.node_token)
        img = prov.catalogue.get(image)
        assert img is not None
        node_json = {
            "node": name, "image": image, "sha256": img.sha256, "deployment": dep.id,
            "features": list(plan.features), "server": self.url, "token": plan.node_token,
        }  # fmt: skip
        return os_release_text(img.os, img.os_version, f"{img.os_name} {img.os_version}"), node_json

    def node(self, name: str) -> dict[str, Any]:
        return dict(json.loads(json.dumps(self.prov.get_node(name).as_dict(), default=str)))


def lab_env(cluster_root: Path, index: int, **extra: str) -> dict[str, str]:
    """Environment for one lab node's slurmd (its hooks inherit it)."""
    return {"CMT_POWER_DRIVER": "lab-namespace", "CMT_LAB_MAC": lab_mac(index), **extra}


@dataclass
class Lab:
    """A mini cluster whose nodes were installed by the real boot server, which runs beside them."""

    cluster: MiniCluster
    server: LabServer
    cmt_toml: Path
    watcher: subprocess.Popen[bytes] | None = None

    def start_watcher(self, interval: float = 0.5) -> None:
        argv = [sys.executable, "-m", "cmt_slurm", "slurm", "watch", "--interval", str(interval)]
        env = {**self.cluster.env, "CMT_CONFIG": str(self.cmt_toml)}
        log = (self.cluster.log_dir / "watch.log").open("ab")
        self.watcher = subprocess.Popen(
            self.cluster.wrap(argv), env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()

    def watch_log(self) -> str:
        p = self.cluster.log_dir / "watch.log"
        return p.read_text() if p.exists() else ""

    def stop(self) -> None:
        if self.watcher is not None and self.watcher.poll() is None:
            self.watcher.terminate()
            self.watcher.wait(timeout=10)
        self.cluster.stop()
        self.server.stop()


def start_lab(
    root: Path,
    images: dict[str, str],
    *,
    mode: str = "helpers",
    fast_start: bool = True,
    watcher: bool = True,
    node_env: dict[str, str] | None = None,
    resume_timeout: int = 60,
    epilog_policy: str = "keep",
) -> Lab:
    """Nodes ``{name: image}`` (named n1, n2, … by LLDP port) installed through the server, a cluster
    configured by ``cmt slurm config`` for ``mode``, the server started in its namespace, a watcher."""
    from .cmtconf import generate  # noqa: PLC0415 - cmtconf imports this module's neighbours

    server = LabServer(root / "server").open()
    cmt_toml = root / "cmt.toml"
    cmt_toml.write_text(
        f'server_url = "{server.url}"\ntoken = "{server.admin_token}"\nslurm_mode = "{mode}"\n'
        f'catalogue_dir = "{server.catalogue}"\nnode_command = "{Path(sys.executable).with_name("cmt-node")}"\n'
        f'reimage_overhead_s = {resume_timeout}\nepilog_policy = "{epilog_policy}"\n'
    )
    from .cluster import NodeSpec  # noqa: PLC0415

    nodes = []
    for i, (name, image) in enumerate(images.items(), 1):
        osr, nj = server.install(name, i, image)
        nodes.append(
            NodeSpec(name, os_release=osr, node_json=nj, env={**lab_env(root, i), **(node_env or {})})
        )
    conf_dir = root / "cluster" / "etc"
    conf = generate(conf_dir, mode, cmt_config=cmt_toml, fast_start=fast_start,
                    CMT_REIMAGE_OVERHEAD_S=str(resume_timeout), CMT_EPILOG_POLICY=epilog_policy)  # fmt: skip
    files = dict(conf.files)
    if mode == "prolog":
        # The lab's "BMC": the prolog makes a namespace node reboot by entering its namespaces.
        pattern = root / "cluster" / "run" / "slurmd-{node}.pid"
        exports = f"export CMT_NODE_POWER=lab-nsenter CMT_LAB_PIDFILE_PATTERN='{pattern}'\n"
        head, sep, tail = files["cmt-prolog-ctld"].partition("exec ")
        files["cmt-prolog-ctld"] = head + exports + sep + tail
        static = conf.stdout.strip().removeprefix("NodeName Features=")
        nodes = [replace(n, features=static) for n in nodes]
    cluster = MiniCluster(
        root / "cluster", nodes, extra_conf=conf.include, conf_files=files,
        daemon_env={"CMT_CONFIG": str(cmt_toml)}, resume_timeout=resume_timeout,
    )  # fmt: skip
    lab = Lab(cluster, server, cmt_toml)
    try:
        cluster.start()
        server.start(cluster)
        if watcher:
            lab.start_watcher()
    except BaseException:
        lab.stop()
        raise
    return lab
