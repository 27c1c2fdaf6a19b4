"""Boot a kernel + initrd (and optionally a disk) directly under QEMU and wait for a console marker.

Used by the accelerator probe, the image boot tests and the boot-floor benchmark. The serial console is
QEMU's stdout; the disk, if any, is opened with ``snapshot=on`` so a boot never changes a cached image.
Networking is user mode with ``restrict=on`` (no route out of the VM).
"""

from __future__ import annotations

import os
import re
import selectors
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import BackendError


@dataclass(frozen=True)
class BootResult:
    #: Seconds from starting QEMU to the marker on the console.
    seconds: float
    match: re.Match[str]
    console: str


def qemu_argv(
    kernel: Path,
    initrd: Path | None,
    append: str,
    *,
    disk: Path | None = None,
    accel: str = "tcg",
    memory_mib: int = 1024,
    cpus: int = 1,
    net: bool = True,
    extra: Sequence[str] = (),
) -> list[str]:
    """The qemu-system-x86_64 command line for a direct kernel boot with the console on stdout."""
    argv = [
        "qemu-system-x86_64", "-accel", accel, "-machine", "q35", "-m", str(memory_mib), "-smp", str(cpus),
        # The same CPU model and entropy device as the lab's nodes (cmt_slurm/lab/qemu.py): a fair floor.
        "-cpu", "max" if accel == "tcg" else "host", "-device", "virtio-rng-pci",
        "-display", "none", "-monitor", "none", "-serial", "stdio", "-no-reboot", "-nodefaults",
        "-kernel", str(kernel), "-append", append,
    ]  # fmt: skip
    if initrd is not None:
        argv += ["-initrd", str(initrd)]
    if disk is not None:
        argv += ["-drive", f"file={disk},if=virtio,format=qcow2,snapshot=on,cache=unsafe"]
    if net:
        argv += ["-netdev", "user,id=n0,restrict=on", "-device", "virtio-net-pci,netdev=n0"]
    return [*argv, *extra]


def boot_until(
    argv: Sequence[str], marker: str | re.Pattern[str], timeout: float, *, log_path: Path | None = None
) -> BootResult:
    """Start QEMU, return when ``marker`` (a regex) appears on the console, then stop the VM.

    Raises BackendError with the console's last lines when QEMU exits first or ``timeout`` passes.
    """
    pattern = re.compile(marker) if isinstance(marker, str) else marker
    started = time.monotonic()
    proc = subprocess.Popen(
        list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    assert proc.stdout is not None
    os.set_blocking(proc.stdout.fileno(), False)
    buf = b""
    found: re.Match[str] | None = None
    try:
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            while found is None:
                left = timeout - (time.monotonic() - started)
                if left <= 0:
                    break
                if not sel.select(min(left, 0.5)):
                    if proc.poll() is not None:
                        break
                    continue
                chunk = proc.stdout.read()
                if not chunk:
                    if proc.poll() is not None:
                        break
                    continue
                buf += chunk
                found = pattern.search(buf.decode(errors="replace"))
        seconds = time.monotonic() - started
    finally:
        _stop(proc)
        if log_path is not None:
            log_path.write_bytes(buf)
    text = buf.decode(errors="replace")
    if found is None:
        tail = " | ".join(ln.strip() for ln in text.splitlines()[-5:] if ln.strip())[-400:]
        why = (
            f"QEMU exited with status {proc.returncode}" if proc.returncode not in (None, -9) else "timed out"
        )
        raise BackendError(
            f"no {pattern.pattern!r} on the console after {time.monotonic() - started:.0f} s ({why}): {tail}",
            hint=f"console log: {log_path}"
            if log_path
            else "run the QEMU command by hand: " + " ".join(argv),
        )
    return BootResult(seconds=seconds, match=found, console=text)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        # Our own process group (start_new_session): nothing else is signalled.
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    if proc.stdout is not None:
        proc.stdout.close()
