"""How a node leaves its running OS for a reimage or a plain reboot: the ``PowerDriver`` port.

``cmt-node reboot`` decides *what* to do (which deployment, with which token); a driver only knows
*how*. The real one kexecs straight into the live reimager (no firmware POST) and falls back to a
firmware reboot, where PXE → iPXE → the boot server hands out the reimage script with a fresh token.
The lab's namespace nodes (no disk, no kernel of their own) use ``cmt_slurm.agent.power_lab`` instead;
``CMT_POWER_DRIVER`` picks one, so tests swap only this part.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import ConfigError

if TYPE_CHECKING:
    from ..runner import CommandRunner


@dataclass(frozen=True)
class ReimageTarget:
    """A deployment the node must boot into the reimager for."""

    server: str
    node: str
    deployment: int
    #: The one-time deployment token, when the server handed it to this node's hook (kexec fast path).
    #: None: only a firmware (PXE) boot can fetch one.
    token: str | None
    #: What the node runs now (for logs and for a lab driver's fallback).
    image: str | None = None


class PowerDriver(Protocol):
    def reimage(self, target: ReimageTarget) -> None:
        """Leave the running OS for the reimager of ``target``. May never return (kexec, reboot).

        :raises CmtError: when the node could not even be made to reboot (the caller logs it).
        """
        ...

    def reboot(self) -> None:
        """A plain reboot into whatever the boot server says (normally the installed OS)."""
        ...


@dataclass
class KexecDriver:
    """Real nodes: kexec into the live reimager fetched from the server, firmware reboot as fallback."""

    disk: str | None = None
    console: tuple[str, ...] = ()
    #: Injected in tests; the real ones by default (imported only on this path).
    runner: CommandRunner | None = None
    opener: Any = None
    workdir: Path = Path("/run/cmt/kexec")
    #: None: detect a running systemd (``/run/systemd/system``).
    systemd: bool | None = None
    #: ``systemctl kexec`` only queues the jump and returns at once: the orderly shutdown then stops
    #: services and kexecs. Falling back to a firmware reboot at once would pre-empt it, so the fallback
    #: waits this long first (it runs only if the shutdown never came).
    kexec_grace_s: float = 120.0
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False, compare=False)

    def _systemd(self) -> bool:
        return Path("/run/systemd/system").is_dir() if self.systemd is None else self.systemd

    def _runner(self) -> CommandRunner:
        from ..runner import SubprocessRunner  # noqa: PLC0415 - only the reboot path needs it

        return self.runner or SubprocessRunner()

    def reimage(self, target: ReimageTarget) -> None:
        from .kexec import firmware_reboot, kexec_live, live_cmdline  # noqa: PLC0415

        runner = self._runner()
        use_systemd = self._systemd()
        if target.token:
            cmdline = live_cmdline(
                target.server, target.deployment, target.token, disk=self.disk, extra=self.console
            )
            extra: dict[str, Any] = {"opener": self.opener} if self.opener is not None else {}
            try:  # returns only if the jump failed
                kexec_live(target.server, cmdline, runner, workdir=self.workdir, systemd=use_systemd, **extra)
                if use_systemd:
                    self.sleep(self.kexec_grace_s)
                    print("cmt-node reboot: systemd did not kexec in time", file=sys.stderr)
            except Exception as exc:  # any failure here still has a working fallback: the firmware
                print(f"cmt-node reboot: kexec into the reimager failed: {exc}", file=sys.stderr)
        firmware_reboot(runner, systemd=use_systemd)

    def reboot(self) -> None:
        from .kexec import firmware_reboot  # noqa: PLC0415

        firmware_reboot(self._runner(), systemd=self._systemd())


DRIVERS = ("kexec", "lab-namespace")


def driver_from_env(env: dict[str, str] | None = None) -> PowerDriver:
    """The driver ``CMT_POWER_DRIVER`` names (default ``kexec``); ``CMT_DISK`` is the reimager's disk.

    :raises ConfigError: an unknown driver name.
    """
    env = dict(os.environ) if env is None else env
    name = env.get("CMT_POWER_DRIVER") or "kexec"
    if name == "kexec":
        console = tuple(env.get("CMT_LIVE_CONSOLE", "").split())
        return KexecDriver(disk=env.get("CMT_DISK") or None, console=console)
    if name == "lab-namespace":
        from .power_lab import NamespaceLabDriver  # noqa: PLC0415

        return NamespaceLabDriver.from_env(env)
    raise ConfigError(
        f"CMT_POWER_DRIVER: {name!r} is not one of {', '.join(DRIVERS)}", hint="unset it on real nodes"
    )
