"""QEMU nodes: the command line (pure), blank disks, and the serial console (logged, drivable by pexpect).

Each VM network-boots with its NIC's iPXE ROM (SeaBIOS → iPXE → DHCP from the lab's dnsmasq → the boot
server's script), then its disk. The serial port is a unix socket QEMU serves (one client at a time)
and also copies into a log file, so tests can both read everything that was printed and type into it.
"""

from __future__ import annotations

import json
import re
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import BackendError
from ..runner import CommandRunner

#: SeaBIOS prints on the serial port when this fw_cfg file holds the port's I/O address (0x3f8).
SERCON_BYTES = b"\xf8\x03"


@dataclass(frozen=True)
class VmSpec:
    name: str
    index: int
    mac: str
    tap: str
    disk: Path
    console_socket: Path
    console_log: Path
    qmp_socket: Path
    pidfile: Path
    sercon_file: Path
    memory_mb: int = 1536
    cpus: int = 1


def vm_mac(index: int) -> str:
    """Locally administered, stable per lab slot: ``52:54:00:77:00:<index>``."""
    if not 0 < index < 256:
        raise ValueError(f"VM index {index} out of 1..255")
    return f"52:54:00:77:00:{index:02x}"


def vm_argv(spec: VmSpec, accel: str = "tcg") -> list[str]:
    """The whole QEMU command line. TCG unless the probe in ``lab.accel`` proved KVM works here."""
    return [
        "qemu-system-x86_64",
        "-name", spec.name,
        "-machine", "q35",
        "-accel", accel,
        "-cpu", "max" if accel == "tcg" else "host",
        "-smp", str(spec.cpus),
        "-m", str(spec.memory_mb),
        "-nodefaults",
        "-display", "none",
        "-vga", "none",
        "-no-user-config",
        # network first, then the disk: a node asks the boot server at every firmware boot
        "-boot", "order=nc,menu=off",
        "-netdev", f"tap,id=n0,ifname={spec.tap},script=no,downscript=no",
        "-device", f"virtio-net-pci,netdev=n0,mac={spec.mac},bootindex=1",
        "-drive", f"if=none,id=d0,file={spec.disk},format=qcow2,cache=unsafe,discard=unmap",
        "-device", "virtio-blk-pci,drive=d0,bootindex=2",
        "-chardev",
        f"socket,id=s0,path={spec.console_socket},server=on,wait=off,logfile={spec.console_log},logappend=on",
        "-serial", "chardev:s0",
        "-fw_cfg", f"name=etc/sercon-port,file={spec.sercon_file}",
        "-qmp", f"unix:{spec.qmp_socket},server=on,wait=off",
        "-pidfile", str(spec.pidfile),
        # DMI identity like real hardware's: the server records serial and UUID at registration
        "-uuid", f"00000000-0000-4000-8000-{spec.index:012d}",
        "-smbios", f"type=1,manufacturer=cmt-slurm,product=lab-vm,serial=CMTLAB{spec.index:04d}",
        "-device", "virtio-rng-pci",
    ]  # fmt: skip


def create_disk(runner: CommandRunner, path: Path, size: str = "8G") -> None:
    """A blank qcow2 (nothing allocated): the node starts with an empty disk, like new hardware."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        path.unlink()
    runner.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), size], timeout=60)


def qmp(sock_path: Path, command: str, timeout: float = 5.0) -> dict[str, object]:
    """One QMP command (e.g. ``system_reset``, ``quit``); returns the answer."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(sock_path))
        reader = sock.makefile("rb")
        reader.readline()  # greeting
        sock.sendall(b'{"execute": "qmp_capabilities"}\n')
        reader.readline()
        sock.sendall(json.dumps({"execute": command}).encode() + b"\n")
        while True:
            line = reader.readline()
            if not line:
                raise BackendError(f"QMP {command}: connection closed")
            answer: dict[str, object] = json.loads(line)
            if "return" in answer or "error" in answer:
                return answer


class ConsoleLog:
    """Reads a VM's console log from a byte offset on: ``wait_for`` returns the first match after it."""

    def __init__(self, path: Path, offset: int | None = None):
        self.path = path
        self.offset = path.stat().st_size if offset is None and path.exists() else (offset or 0)

    def text(self) -> str:
        if not self.path.exists():
            return ""
        with self.path.open("rb") as f:
            f.seek(self.offset)
            return f.read().decode(errors="replace")

    def wait_for(self, pattern: str, timeout: float, fail: str | None = None) -> re.Match[str]:
        """:raises BackendError: timeout, or ``fail`` matched first (e.g. the agent's FAILED line)."""
        deadline = time.monotonic() + timeout
        rx = re.compile(pattern)
        bad = re.compile(fail) if fail else None
        while True:
            text = self.text()
            match = rx.search(text)
            if match:
                return match
            if bad is not None and (m := bad.search(text)):
                raise BackendError(f"{self.path.name}: {m.group(0).strip()[:300]}")
            if time.monotonic() > deadline:
                tail = " / ".join(text.strip().splitlines()[-5:])[-600:]
                raise BackendError(f"{self.path.name}: no {pattern!r} within {timeout:.0f} s; last: {tail}")
            time.sleep(0.2)


class Console:
    """The live serial console over QEMU's unix socket, driven with pexpect (``expect``/``sendline``)."""

    def __init__(self, sock_path: Path, timeout: float = 30.0):
        import pexpect.fdpexpect  # noqa: PLC0415 - a test dependency; only consoles need it

        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.connect(str(sock_path))
        self.child = pexpect.fdpexpect.fdspawn(self._sock.fileno(), timeout=timeout, encoding="utf-8")

    def expect(self, pattern: str, timeout: float | None = None) -> str:
        self.child.expect(pattern, timeout=timeout)
        return str(self.child.after)

    def sendline(self, text: str) -> None:
        self.child.sendline(text)

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> Console:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
