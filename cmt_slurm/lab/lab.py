"""``Lab``: a whole provisioning network on this machine — namespace, bridge, dnsmasq, lldpd as the switch,
the boot server, and N QEMU nodes — with its state (PIDs, taps, paths) in ``<workdir>/lab.json``.

``up`` creates what is missing and starts what is not running (so it is safe to repeat); ``down`` stops
every recorded process by PID (checked against its start time), deletes taps, bridge and namespace,
and removes the runtime files (logs stay under ``<workdir>/logs``); ``down`` on nothing is a no-op.
Other parts hook in with ``start_service`` (e.g. the Slurm controller, inside the namespace) and their
processes are stopped by ``down`` like the lab's own.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..apiclient import ApiClient
from ..errors import BackendError, BadInput, Forbidden, NotFound
from ..runner import CommandRunner, SubprocessRunner
from . import netns, procs, qemu, services
from .accel import probe_accel as probe_accel_impl
from .netns import LabNetwork, free_loopback_port, loopback_port_free
from .state import LabState, VmState, lab_id

STATE_FILE = "lab.json"
NEEDED = ("ip", "qemu-system-x86_64", "qemu-img", "dnsmasq", "lldpd", "lldpcli")


def probe_accel() -> str:
    """KVM only where the probe (a tiny test boot, ``lab.accel``) shows a guest really runs; else TCG."""
    return probe_accel_impl().name


class Lab:
    def __init__(
        self,
        workdir: Path,
        runner: CommandRunner | None = None,
        memory_mb: int = 1536,
        server_settings: Mapping[str, str | int | float] | None = None,
    ):
        self.workdir = workdir.resolve()
        self.runner = runner or SubprocessRunner()
        self.id = lab_id(self.workdir)
        self.net = LabNetwork(netns=f"cmt-lab-{self.id}")
        self.memory_mb = memory_mb
        #: Extra top-level cmt.toml settings for the lab's server (extension point: the demo's site_files).
        self.server_settings = dict(server_settings or {})
        self.state = self._load() or LabState(self.id, self.net.netns, 0)

    # -- paths and names ----------------------------------------------------------------------------
    @property
    def run_dir(self) -> Path:
        return self.workdir / "run"

    @property
    def logs(self) -> Path:
        return self.workdir / "logs"

    @property
    def catalogue_dir(self) -> Path:
        return self.workdir / "catalogue"

    @property
    def server_config(self) -> Path:
        return self.workdir / "cmt.toml"

    @property
    def server_url(self) -> str:
        """The boot server as VMs (and anything inside the namespace) see it."""
        return services.server_url(self.net)

    @property
    def host_url(self) -> str:
        """The boot server from the host's loopback (through the forwarder)."""
        return f"http://127.0.0.1:{self.state.host_port}"

    def vm(self, index: int) -> VmState:
        name = f"vm{index}"
        d = self.workdir / "vms"
        spec = qemu.VmSpec(
            name=name,
            index=index,
            mac=qemu.vm_mac(index),
            tap=f"tap{index}",
            disk=d / f"{name}.qcow2",
            console_socket=self.run_dir / f"{name}.console",
            console_log=self.logs / f"{name}.console.log",
            qmp_socket=self.run_dir / f"{name}.qmp",
            pidfile=self.run_dir / f"{name}.pid",
            sercon_file=self.run_dir / "sercon",
            memory_mb=self.memory_mb,
        )
        return VmState(name, index, spec.mac, spec.tap, services.port_id(index), spec)

    def vms(self) -> list[VmState]:
        return [self.vm(i) for i in range(1, self.state.nodes + 1)]

    def find_vm(self, ref: str) -> VmState:
        """``vm3``, ``3``, a MAC, or a node name ending in the port number (``node3``)."""
        for v in self.vms():
            if ref in (v.name, str(v.index), v.mac) or re.fullmatch(rf"[A-Za-z_-]+0*{v.index}", ref):
                return v
        raise NotFound(f"lab: no VM {ref!r}", hint=f"VMs: {', '.join(v.name for v in self.vms()) or 'none'}")

    def exec_argv(self, argv: Sequence[str]) -> list[str]:
        return self.net.exec_argv(argv)

    # -- state --------------------------------------------------------------------------------------
    def _load(self) -> LabState | None:
        path = self.workdir / STATE_FILE
        if not path.is_file():
            return None
        try:
            return LabState.from_json(json.loads(path.read_text()))
        except (ValueError, KeyError, TypeError) as exc:
            raise BadInput(
                f"{path}: unreadable lab state ({exc})", hint=f"remove {path} and the lab by hand"
            ) from None

    def _save(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        tmp = self.workdir / f".{STATE_FILE}.tmp"
        tmp.write_text(json.dumps(self.state.to_json(), indent=2, sort_keys=True) + "\n")
        tmp.replace(self.workdir / STATE_FILE)

    def is_up(self) -> bool:
        return netns.netns_exists(self.net.netns)

    # -- processes ----------------------------------------------------------------------------------
    def start_service(
        self, name: str, argv: Sequence[str], *, in_netns: bool = True, env: Mapping[str, str] | None = None
    ) -> procs.ProcRecord:
        """Start (or keep) a recorded process; ``down`` stops it. The hook for the Slurm controller."""
        old = self.state.processes.get(name)
        if old is not None and procs.alive(old):
            return old
        full = self.exec_argv(argv) if in_netns else list(argv)
        rec = procs.spawn(name, full, self.logs / f"{name}.log", env=env)
        self.state.processes[name] = rec
        self._save()
        return rec

    def stop_service(self, name: str, *, kill: bool = False) -> bool:
        """Stop a recorded process. ``kill``: SIGKILL its whole process group at once, as a crash
        would (a SIGTERM'd gunicorn finishes the downloads in flight, which is not a server dying)."""
        rec = self.state.processes.pop(name, None)
        self._save()
        if rec is None:
            return False
        if kill:
            return procs.kill_group(rec)
        return procs.stop(rec)

    # -- up / down ----------------------------------------------------------------------------------
    def up(
        self,
        nodes: int = 3,
        *,
        live_dir: Path | None = None,
        start_vms: bool = True,
        with_server: bool = True,
        hooks: Sequence[Callable[[Lab], None]] = (),
        log: Callable[[str], None] = lambda _m: None,
    ) -> LabState:
        """Bring the lab up (idempotent). ``live_dir``: directory with the live env's vmlinuz/initrd.img.

        :raises Forbidden: not root. :raises BackendError: a tool is missing or a daemon does not start.
        """
        if os.geteuid() != 0:
            raise Forbidden("cmt lab needs root (network namespaces, taps)", hint="run it with sudo")
        missing = [t for t in NEEDED if shutil.which(t) is None]
        if missing:
            raise BackendError(f"cmt lab: missing {', '.join(missing)}", hint="run scripts/install-deps")
        if not 0 < nodes < 100:
            raise BadInput(f"--nodes {nodes}: must be 1..99")
        self.state.nodes = max(self.state.nodes, nodes)
        self.state.accel = probe_accel()
        for d in (self.run_dir, self.logs, self.catalogue_dir, self.workdir / "server", self.workdir / "vms"):
            d.mkdir(parents=True, exist_ok=True)
        # lldpcli drops root before it connects: its socket's directory must be reachable by others.
        self.workdir.chmod(0o755)
        self.run_dir.chmod(0o755)
        self._save()
        netns.create_network(self.runner, self.net)
        for v in self.vms():
            netns.add_tap(self.runner, self.net, v.tap)
        log(f"network {self.net.netns}: {self.net.bridge} {self.net.host_ip}/{self.net.prefix}")
        self._start_dnsmasq()
        self._start_lldpd()
        if with_server:
            self.state.live_dir = str(live_dir or self.workdir / "live")
            self._start_server(Path(self.state.live_dir))
            log(f"boot server {self.server_url} (from the host: {self.host_url})")
        for hook in hooks:
            hook(self)
        if start_vms:
            for v in self.vms():
                self.start_vm(v, blank_disk=not v.spec.disk.exists())
            log(f"{len(self.vms())} VMs started ({self.state.accel})")
        return self.state

    def vm_ip(self, v: VmState) -> str:
        """The address dnsmasq pins to the VM's MAC (stable across reimages: Slurm reaches it there)."""
        return str(self.net.net.network_address + 10 + v.index)

    def _start_dnsmasq(self) -> None:
        conf = self.run_dir / "dnsmasq.conf"
        pins = [(v.mac, self.vm_ip(v)) for v in self.vms()]
        text = services.dnsmasq_conf(
            self.net, self.run_dir / "dnsmasq.leases", self.run_dir / "dnsmasq.pid", pins
        )
        old = self.state.processes.get("dnsmasq")
        if old is not None and procs.alive(old) and conf.is_file() and conf.read_text() == text:
            return
        if old is not None:
            self.stop_service("dnsmasq")
        conf.write_text(text)
        self.start_service("dnsmasq", services.dnsmasq_argv(conf))

    def _start_lldpd(self) -> None:
        sock = self.run_dir / "lldpd.socket"
        taps = [v.tap for v in self.vms()]
        old = self.state.processes.get("lldpd")
        if old is not None and procs.alive(old) and old.argv[-1] == ",".join(taps):
            return
        if old is not None:
            self.stop_service("lldpd")
        Path("/run/lldpd").mkdir(mode=0o755, exist_ok=True)  # lldpd's privilege-separation chroot
        rec = self.start_service("lldpd", services.lldpd_argv(sock, self.run_dir / "lldpd.pid", taps))
        procs.wait_for(sock.exists, 10, "waiting for lldpd's control socket", rec)
        ports = [services.SwitchPort(v.tap, v.port_id, f"lab {v.name}") for v in self.vms()]
        for cmd in services.lldpcli_commands(ports):
            self.runner.run(self.exec_argv(["lldpcli", "-u", str(sock), *cmd]), timeout=30)

    def _start_server(self, live_dir: Path) -> None:
        if not services.server_available():
            raise BackendError("cmt lab: the boot server (cmt_slurm.server) is not installed")
        self.server_config.write_text(
            services.server_toml(
                self.net, self.workdir / "server", self.catalogue_dir, live_dir, extra=self.server_settings
            )
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("CMT_") or k.startswith("CMT_TEST_")}
        rec = self.start_service("server", services.server_argv(self.server_config), env=env)
        if not self.state.host_port or not loopback_port_free(self.state.host_port):
            old = self.state.processes.get("forward")
            if old is None or not procs.alive(old):
                self.state.host_port = free_loopback_port()
        self.start_service(
            "forward",
            services.module_argv("cmt_slurm.lab.forward", "--netns", self.net.netns,
                                     "--listen", f"127.0.0.1:{self.state.host_port}",
                                     "--to", f"{self.net.host_ip}:{services.SERVER_PORT}"),
            in_netns=False,
        )  # fmt: skip
        procs.wait_for(
            lambda: procs.http_ok(self.host_url + "/api/v1/images"), 60, "waiting for the boot server", rec
        )

    def restart_server(self) -> None:
        """Start the boot server again after ``stop_service("server")`` (same database, same port)."""
        self._start_server(Path(self.state.live_dir))

    def start_vm(self, v: VmState, *, blank_disk: bool = False) -> procs.ProcRecord:
        if blank_disk:
            qemu.create_disk(self.runner, v.spec.disk)
        v.spec.sercon_file.write_bytes(qemu.SERCON_BYTES)
        for stale in (v.spec.console_socket, v.spec.qmp_socket):
            if stale.exists():
                stale.unlink()
        rec = self.start_service(v.name, qemu.vm_argv(v.spec, self.state.accel))
        procs.wait_for(v.spec.console_socket.exists, 20, f"waiting for {v.name}'s console socket", rec)
        return rec

    def stop_vm(self, v: VmState) -> bool:
        return self.stop_service(v.name)

    def down(self, log: Callable[[str], None] = lambda _m: None) -> list[str]:
        """Remove every trace; returns what was removed (empty when nothing was up)."""
        removed: list[str] = []
        # VMs first (they hold the taps), then the daemons, the forwarder last.
        order = sorted(self.state.processes, key=lambda n: (not n.startswith("vm"), n == "forward"))
        for name in order:
            rec = self.state.processes[name]
            if procs.stop(rec):
                removed.append(f"{name} (pid {rec.pid})")
        self.state.processes.clear()
        for pid in netns.netns_pids(self.runner, self.net.netns):
            log(f"stopping pid {pid} left in {self.net.netns}")
            procs.stop(procs.ProcRecord("stray", pid, procs.start_ticks(pid) or -1, (), ""))
        removed += netns.delete_network(self.runner, self.net, [v.tap for v in self.vms()])
        runtime = ("run", "vms", "server", STATE_FILE, "admin.token", "cmt.toml")
        for path in (self.workdir / p for p in runtime):
            if path.is_dir():
                shutil.rmtree(path)
                removed.append(str(path))
            elif path.exists():
                path.unlink()
        self.state = LabState(self.id, self.net.netns, 0)
        for r in removed:
            log(f"removed {r}")
        return removed

    def status(self) -> dict[str, Any]:
        running = {n: procs.alive(r) for n, r in self.state.processes.items()}
        return {
            "id": self.id,
            "workdir": str(self.workdir),
            "up": self.is_up(),
            "netns": self.net.netns,
            "bridge": f"{self.net.bridge} {self.net.host_ip}/{self.net.prefix}",
            "server_url": self.server_url,
            "host_url": self.host_url if self.state.host_port else None,
            "accel": self.state.accel,
            "processes": {
                n: {"pid": r.pid, "running": running[n], "log": r.log}
                for n, r in self.state.processes.items()
            },
            "vms": [v.to_json() | {"console_log": str(v.spec.console_log)} for v in self.vms()],
        }

    def admin_token(self) -> str:
        """An admin API token for this lab's server (made once, kept in ``<workdir>/admin.token``)."""
        path = self.workdir / "admin.token"
        if path.is_file():
            return path.read_text().strip()
        # Head-node imports (SQLAlchemy): only the lab host needs them, never the agent.
        from ..catalogue import Catalogue  # noqa: PLC0415
        from ..config import load_settings  # noqa: PLC0415
        from ..provisioner import Provisioner  # noqa: PLC0415
        from ..store import Store  # noqa: PLC0415

        settings = load_settings(self.server_config, env={})
        prov = Provisioner(Store.open(settings.effective_db_url), Catalogue(), settings)
        secret = prov.create_token(f"lab-{self.id}-{int(time.time())}", actor="cmt-lab")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secret + "\n")
        return secret

    def api(self) -> ApiClient:
        """An admin client for the lab's server, from the host (through the loopback forwarder)."""
        return ApiClient(self.host_url, token=self.admin_token(), timeout=15.0)

    def console_log(self, ref: str, from_start: bool = False) -> qemu.ConsoleLog:
        path = self.find_vm(ref).spec.console_log
        return qemu.ConsoleLog(path, 0 if from_start else None)
