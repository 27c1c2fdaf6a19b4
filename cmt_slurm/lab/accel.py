"""Which QEMU accelerator works here: KVM only when a tiny boot proves it, else TCG.

``/dev/kvm`` existing is not enough (qemu-lab notes: a nested hypervisor accepted KVM_CREATE_VM but could
not run the guests). The probe boots a kernel with ``-accel kvm`` and no initrd and waits a few seconds for
its first console line; anything else means TCG. ``CMT_ACCEL=kvm|tcg`` skips the probe.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from ..errors import CmtError, ConfigError
from .directboot import boot_until, qemu_argv
from .imagebuild.cache import cache_root

ACCELS = ("kvm", "tcg")


@dataclass(frozen=True)
class Accel:
    name: str
    reason: str

    @property
    def qemu_args(self) -> list[str]:
        return ["-accel", self.name]


def probe_accel(kernel: Path | None = None, timeout: float = 8.0) -> Accel:
    """``kvm`` if a KVM boot of ``kernel`` prints its banner within ``timeout`` seconds, else ``tcg``."""
    forced = os.environ.get("CMT_ACCEL", "").strip()
    if forced:
        if forced not in ACCELS:
            raise ConfigError(f"CMT_ACCEL={forced!r} is not kvm or tcg", hint="unset CMT_ACCEL to probe")
        return Accel(forced, "CMT_ACCEL")
    return _probe(str(kernel) if kernel else "", timeout)


@lru_cache(maxsize=4)
def _probe(kernel: str, timeout: float) -> Accel:
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return Accel("tcg", "/dev/kvm is missing or not accessible")
    path = Path(kernel) if kernel else _any_kernel()
    if path is None:
        return Accel("tcg", "no kernel to probe KVM with")
    argv = qemu_argv(path, None, "console=ttyS0 earlyprintk=serial,ttyS0 panic=-1", accel="kvm",
                     memory_mib=256, net=False)  # fmt: skip
    try:
        boot_until(argv, r"Linux version", timeout)
    except CmtError as exc:
        return Accel("tcg", f"KVM test boot failed: {exc.message[:160]}")
    except OSError as exc:
        return Accel("tcg", f"qemu-system-x86_64 could not run: {exc}")
    return Accel("kvm", "KVM test boot printed its banner")


def _any_kernel() -> Path | None:
    found = sorted((cache_root() / "live-base").glob("*/vmlinuz")) + sorted(Path("/boot").glob("vmlinuz-*"))
    return found[0] if found else None
