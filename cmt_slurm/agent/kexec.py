"""kexec: into the new OS at the end of a reimage, and into the live reimager (``cmt-node reboot`` fast path).

``load`` then ``execute`` are separate so the agent can report ``kexec`` between them (after ``kexec -e``
nothing more is said). ``kexec_live`` is the reusable fast path for the reboot hook: fetch the live kernel
and initrd from the server, load them with the deployment's command line, and jump (no firmware POST).
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..runner import CommandRunner
from .bootcfg import BootConfig, find_boot_config
from .disk import fs_uuid, parse_sfdisk_json
from .transfer import Opener, RetryPolicy, download, require_http_url, urlopen

#: The reboot hook has seconds, not minutes: a few quick tries, then the firmware fallback.
LIVE_FETCH_POLICY = RetryPolicy(attempts=3, base=1.0, cap=4.0)


def load(runner: CommandRunner, boot: BootConfig, cmdline: str) -> list[str]:
    """``kexec -l``; returns the argv (for the report). :raises CommandFailed: the load failed."""
    argv = ["kexec", "-l", str(boot.kernel)]
    if boot.initrd is not None:
        argv.append(f"--initrd={boot.initrd}")
    argv.append(f"--append={cmdline}")
    runner.run(argv, timeout=120)
    return argv


def load_local(runner: CommandRunner, disk: str, mountpoint: Path) -> BootConfig:
    """Load the OS already on ``disk`` (its last partition's boot config) for kexec.

    The safe fallback when a reimage failed before the disk was touched: straight back into the old OS
    without the firmware (which also works for images that carry no boot loader).
    :raises CmtError: no partition table, no filesystem, no kernel, or ``kexec -l`` refused.
    """
    table = parse_sfdisk_json(runner.run(["sfdisk", "--json", disk], timeout=60).stdout, disk)
    root = table.root()
    fstype = runner.run(["blkid", "-o", "value", "-s", "TYPE", root.node], timeout=30).stdout.strip()
    uuid = fs_uuid(runner, root.node)
    mountpoint.mkdir(parents=True, exist_ok=True)
    runner.run(["mount", "-o", "ro", "-t", fstype or "auto", root.node, str(mountpoint)], timeout=120)
    try:
        boot = find_boot_config(mountpoint, f"root=UUID={uuid} rw" if uuid else "")
        load(runner, boot, boot.cmdline)
    finally:
        runner.run(["umount", str(mountpoint)], check=False, timeout=120)
    return boot


def execute(runner: CommandRunner, systemd: bool = False) -> None:
    """Jump into the loaded kernel. ``systemd``: shut services down first (``systemctl kexec``).

    Returns only when the jump did not happen; the caller then falls back to a firmware reboot.
    """
    runner.run(["sync"], timeout=60)
    if systemd:
        runner.run(["systemctl", "kexec"], timeout=120)
    else:
        runner.run(["kexec", "-e"], timeout=60)


def firmware_reboot(runner: CommandRunner, systemd: bool = False) -> None:
    """Reboot through the firmware (PXE again; the server then answers ``local`` or the next step)."""
    runner.run(["sync"], check=False, timeout=60)
    if systemd:
        runner.run(["systemctl", "reboot"], check=False, timeout=120)
    else:
        runner.run(["reboot", "-f"], check=False, timeout=60)


def live_cmdline(
    server: str,
    deployment: int,
    token: str,
    *,
    disk: str | None = None,
    mac: str | None = None,
    extra: Sequence[str] = (),
) -> str:
    """The live reimager's kernel command line for one deployment (docs/dev/contracts.md, agent options)."""
    words = [f"cmt.server={server}", "cmt.mode=reimage", f"cmt.deployment={deployment}", f"cmt.token={token}"]
    if disk:
        words.append(f"cmt.disk={disk}")
    if mac:
        words.append(f"cmt.mac={mac}")
    words.extend(extra)
    for word in words:
        if any(c.isspace() for c in word) or '"' in word:
            raise ValueError(f"kernel command line word {word!r} would need quoting")
    return " ".join(words)


@dataclass(frozen=True)
class LiveKexec:
    kernel: Path
    initrd: Path
    cmdline: str
    argv: tuple[str, ...]


def kexec_live(
    server: str,
    cmdline: str,
    runner: CommandRunner,
    *,
    workdir: Path = Path("/run/cmt/kexec"),
    opener: Opener = urlopen,
    policy: RetryPolicy = LIVE_FETCH_POLICY,
    execute_now: bool = True,
    systemd: bool | None = None,
) -> LiveKexec:
    """Fast path of ``cmt-node reboot``: kexec into the live reimager with ``cmdline``.

    Files go to ``workdir`` (tmpfs on installed nodes: /run). With ``execute_now`` this only returns
    when the jump failed. ``systemd=None`` detects a running systemd (``/run/systemd/system``).

    :raises Transient | Fatal: the live files could not be fetched.
    :raises CommandFailed: ``kexec -l`` refused them.
    """
    base = server.rstrip("/")
    require_http_url(base, "server")
    workdir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name in ("vmlinuz", "initrd.img"):
        target = workdir / name
        with target.open("wb") as out:
            download(f"{base}/boot/live/{name}", out, opener=opener, policy=policy)
        paths[name] = target
    boot = BootConfig(paths["vmlinuz"], paths["initrd.img"], cmdline, "live")
    argv = load(runner, boot, cmdline)
    if execute_now:
        use_systemd = Path("/run/systemd/system").is_dir() if systemd is None else systemd
        execute(runner, systemd=use_systemd)
    return LiveKexec(paths["vmlinuz"], paths["initrd.img"], cmdline, tuple(argv))


def quote_argv(argv: Sequence[str]) -> str:
    return " ".join(shlex.quote(a) for a in argv)
