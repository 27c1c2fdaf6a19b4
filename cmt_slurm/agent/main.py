"""The live reimager: ``python -m cmt_slurm.agent`` (the live env's init job) or ``cmt-node agent``.

Order: network → identify (discover mode: LLDP + register) → plan → transfer → verify → write → grow →
identity → kexec. Each stage is reported when it starts, with the previous one's duration in the message;
transfer reports progress bytes at least every ~1 s while bytes flow. On failure the stage and reason are
reported, then: old disk untouched → firmware reboot (the server answers ``local``); disk written → stay
in the live env, error on the console, failure report retried until it gets through.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import __file__ as _package_init
from ..errors import BadInput, CmtError
from ..runner import CommandRunner, SubprocessRunner
from . import disk as diskmod
from . import identity, kexec
from .bootcfg import find_boot_config, merge_cmdline
from .cmdline import AgentOptions, describe_options, parse_cmdline
from .hooks_ready import SYSTEMD_UNIT
from .lldp import parse_lldp
from .lldp_capture import LldpCapture
from .network import (
    Interface,
    default_disk,
    list_disks,
    list_interfaces,
    network_up,
    pick_interface,
    read_dmi,
)
from .report import AgentApi, Plan
from .transfer import (
    Opener,
    ProgressThrottle,
    RetryPolicy,
    check_digest,
    download,
    fits_in_ram,
    ram_room,
    urlopen,
)

DEFAULT_POLICY = RetryPolicy()
#: A progress report is best effort: one try, the download must not wait on it.
PROGRESS_POLICY = RetryPolicy(attempts=1)


def capture_lldp(iface: str, timeout: float) -> bytes | None:
    with LldpCapture([iface]) as cap:
        got = cap.receive(timeout)
    return got.frame if got else None


@dataclass
class AgentDeps:
    """Everything the agent touches outside itself; tests swap in fakes."""

    runner: CommandRunner = field(default_factory=SubprocessRunner)
    opener: Opener = urlopen
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    console: Callable[[str], None] = lambda msg: print(f"cmt-agent: {msg}", flush=True)
    workdir: Path = Path("/run/cmt")
    mountpoint: Path = Path("/mnt/newroot")
    interfaces: Callable[[], list[Interface]] = list_interfaces
    disks: Callable[[], list[dict[str, object]]] = list_disks
    dmi: Callable[[], dict[str, str]] = read_dmi
    capture_lldp: Callable[[str, float], bytes | None] = capture_lldp
    room: Callable[[Path], tuple[int, int]] = ram_room
    chown: Callable[[Path, int, int], None] = os.chown
    #: Where the node-side sources come from (the live env's own copy of cmt_slurm).
    package_dir: Path = Path(_package_init).parent
    http_policy: RetryPolicy = DEFAULT_POLICY
    #: Seconds between registrations while the server has no plan for a discovered node.
    discover_poll: float = 20.0
    max_discover_polls: int | None = None
    #: How often to retry the failure report once the disk is written (None: until it gets through).
    max_failure_reports: int | None = None
    #: False in tests: no ``kexec -e`` / reboot is issued, the outcome says what would have happened.
    execute: bool = True


class StageFailed(CmtError):
    def __init__(self, stage: str, cause: CmtError):
        super().__init__(f"{stage}: {cause.message}", hint=cause.hint)
        self.stage = stage
        self.cause = cause


@dataclass
class Outcome:
    #: ``kexec`` (jumped into the new OS), ``reboot`` (firmware), ``stay`` (live env, error shown).
    action: str
    node: str | None = None
    stage: str | None = None
    error: str | None = None
    timings: dict[str, float] = field(default_factory=dict)


class Agent:
    def __init__(self, opts: AgentOptions, deps: AgentDeps | None = None):
        self.opts = opts
        self.deps = deps or AgentDeps()
        self.api = AgentApi(
            opts.server,
            deployment=int(opts.deployment) if opts.deployment else None,
            token=opts.token,
            policy=self.deps.http_policy,
            sleep=self.deps.sleep,
            log=self.deps.console,
        )
        self.stage = "live"
        self.disk_touched = False
        self.timings: dict[str, float] = {}
        self._stage_started = self.deps.clock()
        self.node: str | None = None
        self._kexec_loaded = False
        self._kexec_message = ""

    # -- stage bookkeeping --------------------------------------------------------------------------
    def _enter(self, stage: str, message: str = "", report: bool = True) -> None:
        now = self.deps.clock()
        took = now - self._stage_started
        self.timings[self.stage] = round(took, 3)
        summary = f"{self.stage} done in {took:.2f} s"
        self.stage, self._stage_started = stage, now
        self.deps.console(f"stage {stage}: {message or summary}")
        if report:
            self.api.report(stage, message=f"{summary}; {message}" if message else summary)

    def _progress(self, stage: str) -> ProgressThrottle:
        def send(done: int) -> None:
            try:
                self.api.report(stage, progress_bytes=done, policy=PROGRESS_POLICY)
            except CmtError as exc:
                self.deps.console(f"progress report not delivered ({exc.message}); carrying on")

        return ProgressThrottle(send, interval=1.0, clock=self.deps.clock)

    # -- the run ------------------------------------------------------------------------------------
    def run(self) -> Outcome:
        """Never raises: every failure ends in a report and a safe fallback."""
        for warning in self.opts.warnings:
            self.deps.console(warning)
        try:
            return self._run()
        except CmtError as exc:
            return self._fail(exc)
        except Exception as exc:  # the agent's one boundary: a bug still gets reported
            return self._fail(CmtError(f"internal error: {type(exc).__name__}: {exc}"))

    def _run(self) -> Outcome:
        d = self.deps
        iface = pick_interface(d.interfaces(), self.opts.iface, self.opts.mac)
        lease = network_up(d.runner, iface)
        plan = self._identify(iface, f"network up on {iface.name} ({iface.mac}) as {lease.ip}")
        self.node = plan.node
        self._transfer(plan)
        self._grow_identity_kexec(plan)
        return self._boot()

    def _identify(self, iface: Interface, net_message: str) -> Plan:
        if self.opts.mode == "reimage":
            self._enter("live", net_message)
            return self._override(self.api.plan())
        self.stage = "identify"
        self.deps.console(f"stage identify: {net_message}; listening for LLDP on {iface.name}")
        payload = self._registration(iface)
        polls = 0
        while True:
            name, plan = self.api.register(payload)
            self.node = name
            if plan is not None:
                break
            polls += 1
            if self.deps.max_discover_polls is not None and polls >= self.deps.max_discover_polls:
                raise BadInput(f"registered as {name}, but the server has no image for it")
            self.deps.console(f"registered as {name}; no target image yet, asking again shortly")
            self.deps.sleep(self.deps.discover_poll)
        self.api.deployment, self.api.token = plan.deployment, plan.token
        self.deps.console(f"registered as {name}: deployment {plan.deployment}, image {plan.image}")
        return self._override(plan)

    def _registration(self, iface: Interface) -> dict[str, Any]:
        frame = self.deps.capture_lldp(iface.name, self.opts.lldp_timeout)
        lldp: dict[str, Any] | None = None
        if frame is None:
            self.deps.console(f"no LLDP frame on {iface.name} within {self.opts.lldp_timeout:.0f} s")
        else:
            try:
                lldp = dataclasses.asdict(parse_lldp(frame))
            except BadInput as exc:
                self.deps.console(f"ignoring an unreadable LLDP frame: {exc.message}")
        return {
            "macs": [i.mac for i in self.deps.interfaces()],
            "boot_mac": iface.mac,
            "lldp": lldp,
            "lldp_frame": frame.hex() if frame else None,
            "dmi": self.deps.dmi(),
            "disks": self.deps.disks(),
        }

    def _override(self, plan: Plan) -> Plan:
        changes: dict[str, Any] = {}
        if self.opts.image_url:
            changes["url"] = self.opts.image_url
        if self.opts.sha256:
            changes["sha256"] = self.opts.sha256
        if self.opts.disk:
            changes["disk"] = self.opts.disk
        if not (changes.get("disk") or plan.disk):
            changes["disk"] = default_disk(self.deps.disks())
        return dataclasses.replace(plan, **changes) if changes else plan

    def _transfer(self, plan: Plan) -> None:
        """Transfer, verify and write: via a verified copy in RAM, else streamed (verified after)."""
        d = self.deps
        d.workdir.mkdir(parents=True, exist_ok=True)
        mem, free = d.room(d.workdir)
        in_ram = plan.size is not None and fits_in_ram(plan.size, mem, free)
        how = "to RAM" if in_ram else "streaming to disk (does not fit in RAM)"
        self._enter("transfer", f"{plan.image} from {plan.url} {how}")
        progress = self._progress("transfer")
        target = str(plan.disk)
        if in_ram:
            local = d.workdir / "image"
            with local.open("wb") as out:
                got = download(
                    plan.url, out, opener=d.opener, policy=d.http_policy, sleep=d.sleep,
                    on_bytes=progress, on_retry=self._retry_note, expected_size=plan.size,
                )  # fmt: skip
            progress.flush()
            self._enter("verify", f"{got.size} bytes received in {got.attempts} request(s)")
            check_digest(got.sha256, plan.sha256, plan.url)
            info = diskmod.check_image(d.runner, str(local), plan.format)
            self._check_fits(target, info.virtual_size)
            self._enter("write", f"sha256 ok; writing {info.virtual_size} bytes to {target}")
            self.disk_touched = True
            diskmod.write_image(d.runner, str(local), target, info.format, self._write_progress(info))
            local.unlink()
            return
        info = diskmod.check_image(d.runner, plan.url, plan.format)
        self._check_fits(target, info.virtual_size)
        self.disk_touched = True
        diskmod.write_image(
            d.runner, plan.url, target, info.format,
            lambda f: progress(int(f * (plan.size or info.virtual_size))),
        )  # fmt: skip
        progress.flush()
        self._enter("verify", "written while streaming; hashing the source")
        got = download(plan.url, None, opener=d.opener, policy=d.http_policy, sleep=d.sleep)
        check_digest(got.sha256, plan.sha256, plan.url)
        self._enter("write", "sha256 of the streamed image ok")

    def _write_progress(self, info: diskmod.ImageInfo) -> Callable[[float], None]:
        progress = self._progress("write")
        return lambda fraction: progress(int(fraction * info.virtual_size))

    def _check_fits(self, target: str, virtual_size: int) -> None:
        size = diskmod.disk_size(self.deps.runner, target)
        if size < virtual_size:
            raise BadInput(
                f"{target} holds {size} bytes, the image needs {virtual_size}",
                hint="use a bigger disk or a smaller image",
            )

    def _retry_note(self, exc: CmtError, delay: float) -> None:
        self.deps.console(f"{exc.message}; retrying in {delay:.0f} s")

    def _grow_identity_kexec(self, plan: Plan) -> None:
        d = self.deps
        target = str(plan.disk)
        self._enter("grow", f"{plan.image} written to {target}")
        grown = diskmod.grow_root(d.runner, target, d.mountpoint)
        self._enter("identity", f"{grown.root_partition} ({grown.fstype}) grown to the disk")
        diskmod.mount_root(d.runner, grown.root_partition, grown.fstype, d.mountpoint)
        try:
            written = identity.write_identity(d.mountpoint, plan, self.opts.server, chown=d.chown)
            written += identity.install_node_tools(d.mountpoint, d.package_dir, SYSTEMD_UNIT)
            uuid = diskmod.fs_uuid(d.runner, grown.root_partition)
            boot = find_boot_config(d.mountpoint, f"root=UUID={uuid} rw" if uuid else "")
            cmdline = merge_cmdline(boot.cmdline, plan.kernel_args)
            d.console(f"identity written: {', '.join(written)}; booting {boot.source}")
            try:
                kexec.load(d.runner, boot, cmdline)
                self._kexec_loaded = True
                self._kexec_message = f"{boot.kernel.name} {cmdline}"
            except CmtError as exc:
                self._kexec_loaded = False
                self._kexec_message = f"kexec load failed ({exc.message}); rebooting through firmware"
        finally:
            diskmod.umount(d.runner, d.mountpoint)

    def _boot(self) -> Outcome:
        d = self.deps
        if self._kexec_loaded:
            self._enter("kexec", self._kexec_message)
            outcome = Outcome("kexec", self.node, "kexec", timings=self.timings)
            if d.execute:
                kexec.execute(d.runner)
                d.console("kexec -e returned: falling back to a firmware reboot")
                kexec.firmware_reboot(d.runner)
            return outcome
        self._enter("boot", self._kexec_message)
        if d.execute:
            kexec.firmware_reboot(d.runner)
        return Outcome("reboot", self.node, "boot", timings=self.timings)

    # -- failure ------------------------------------------------------------------------------------
    def _fail(self, exc: CmtError) -> Outcome:
        d = self.deps
        failed = StageFailed(self.stage, exc)
        d.console(f"FAILED at {failed.message}")
        if exc.hint:
            d.console(f"hint: {exc.hint}")
        delivered = self._report_failure(failed.message)
        stay = self.disk_touched or self.opts.debug
        if not stay:
            d.console("the disk was not touched: booting the old OS")
            if d.execute:
                self._boot_old_os()
            return Outcome("reboot", self.node, self.stage, failed.message, self.timings)
        why = "the disk was written" if self.disk_touched else "cmt.debug is set"
        d.console(f"staying in the live environment ({why}); report delivered: {delivered}")
        return Outcome("stay", self.node, self.stage, failed.message, self.timings)

    def _boot_old_os(self) -> None:
        """kexec into the intact old OS; the firmware reboot only when there is none (or kexec fails)."""
        d = self.deps
        try:
            target = self.opts.disk or default_disk(d.disks())
            boot = kexec.load_local(d.runner, target, d.mountpoint)
            d.console(f"kexec into the old OS on {target}: {boot.source}")
            kexec.execute(d.runner)
            d.console("kexec -e returned")
        except CmtError as exc:
            d.console(f"no old OS to kexec into ({exc.message})")
        d.console("rebooting through the firmware")
        kexec.firmware_reboot(d.runner)

    def _report_failure(self, message: str) -> bool:
        if self.api.deployment is None:
            return False
        attempts = 0
        while True:
            attempts += 1
            try:
                self.api.report("failed", message=message)
                return True
            except CmtError as exc:
                self.deps.console(f"failure report not delivered: {exc.message}")
                if not self.disk_touched:
                    return False  # rebooting into the old OS is safe without it
                if self.deps.max_failure_reports is not None and attempts >= self.deps.max_failure_reports:
                    return False
                self.deps.sleep(30.0)


def add_agent_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = "Run the live reimager. Kernel command line options:\n" + describe_options()
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument(
        "--cmdline", metavar="FILE", type=Path, default=Path("/proc/cmdline"),
        help="read the options from FILE instead of /proc/cmdline",
    )  # fmt: skip


def run_agent(args: argparse.Namespace) -> int:
    opts = parse_cmdline(Path(args.cmdline).read_text())
    outcome = Agent(opts).run()
    return 0 if outcome.error is None else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cmt_slurm.agent")
    add_agent_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run_agent(args)
    except CmtError as exc:  # only option parsing can raise here: the agent itself never does
        print(f"cmt-agent: error: {exc.message}", file=sys.stderr, flush=True)
        if exc.hint:
            print(f"hint: {exc.hint}", file=sys.stderr, flush=True)
        return exc.exit_code
