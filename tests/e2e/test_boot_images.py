"""Boot what images/ builds, directly under QEMU (TCG unless a probe shows KVM works), and read the proof.

Each node image is booted from the kernel + initrd copied out of its /boot with the BLS entry's options,
its disk attached with snapshot=on; its ``cmt-os-up`` unit prints ``CMT-OS-UP id=... glibc=...`` on the
serial console. The live env is booted with ``cmt.selftest``: /init brings the network up, runs python3
and qemu-img, and prints ``CMT-LIVE-UP ...``. Networking is QEMU user mode with restrict=on.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cmt_slurm.lab import images
from cmt_slurm.lab.accel import probe_accel
from cmt_slurm.lab.directboot import boot_until, qemu_argv
from tests.conftest import need_binary, need_root

pytestmark = [pytest.mark.qemu, pytest.mark.e2e]

#: Generous: TCG on 2 shared cores; a quiet machine needs 20-50 s.
BOOT_TIMEOUT = 600.0
OS_MARKER = re.compile(r"CMT-OS-UP (?P<fields>[^\r\n]*)\r?\n")
LIVE_MARKER = re.compile(r"CMT-LIVE-UP (?P<fields>[^\r\n]*)\r?\n")


def fields(text: str) -> dict[str, str]:
    return dict(word.split("=", 1) for word in text.split() if "=" in word)


@pytest.mark.parametrize(
    ("recipe", "version", "glibc"), [("debian12", "12", "2.36"), ("debian13", "13", "2.41")]
)
def test_node_image_boots_its_own_os_and_glibc(recipe: str, version: str, glibc: str, tmp_path: Path) -> None:
    need_root("building node images")
    need_binary("qemu-system-x86_64", "mmdebstrap")
    image = images.ensure_image(recipe)
    accel = probe_accel(image.kernel)
    argv = qemu_argv(image.kernel, image.initrd, image.kernel_args, disk=image.path, accel=accel.name)
    result = boot_until(argv, OS_MARKER, BOOT_TIMEOUT, log_path=tmp_path / "console.log")
    got = fields(result.match.group("fields"))
    assert got["id"] == "debian"
    assert got["version_id"] == version == image.os_version
    assert got["glibc"] == glibc == image.glibc
    assert got["kernel"] == image.kernel_release
    # Debian 13 runs bookworm's slurmd so that a 22.05 controller accepts it.
    assert got["slurmd"].startswith("22.05.")
    assert got["python"].startswith("3.")
    print(f"{recipe}: {accel.name} boot to marker {result.seconds:.1f} s (guest uptime {got['uptime']} s)")


def test_live_env_boots_to_its_init_with_network_python_and_qemu_img(tmp_path: Path) -> None:
    need_binary("qemu-system-x86_64", "apt-get", "busybox", "qemu-img")
    live = images.ensure_live_env()
    accel = probe_accel(live.kernel)
    argv = qemu_argv(live.kernel, live.initrd, "console=ttyS0 quiet cmt.selftest", accel=accel.name)
    result = boot_until(argv, LIVE_MARKER, BOOT_TIMEOUT, log_path=tmp_path / "console.log")
    got = fields(result.match.group("fields"))
    assert got["kernel"] == live.kernel_release
    assert got["python"].startswith("3.")
    assert got["cmt_slurm"] != "?" and "Error" not in got["cmt_slurm"]
    assert got["agent"] == "ok", f"the agent does not import in the live env: {got['agent']}"
    assert re.match(r"\d+\.\d+", got["qemu-img"])
    assert "network up on " in result.console, "DHCP from QEMU's user network failed in /init"
    print(f"live env: {accel.name} boot to marker {result.seconds:.1f} s (guest uptime {got['uptime']} s)")
