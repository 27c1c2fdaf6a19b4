"""A QEMU VM's own iPXE ROM fetches its script from the real boot server and runs it.

QEMU user networking with ``restrict=on``: the guest reaches nothing but 10.0.2.100:80, which a
``guestfwd`` ``cmd:`` forward (one ``socat`` per guest connection, see /work/shared/notes/qemu-lab.md)
connects to the server on 127.0.0.1. The DHCP boot file is the server's script URL with iPXE's own
``${net0/mac}`` in it, exactly what ``cmt server dnsmasq-config`` hands iPXE clients.
"""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest

from cmt_slurm.ipxe import BOOT_QUERY
from tests.integration.server_fixtures import FIXTURE_CATALOGUE, ServerProcess, start_server

pytestmark = [pytest.mark.qemu, pytest.mark.e2e]

GUEST_SERVER = "http://10.0.2.100"
MAC = "52:54:00:c0:ff:ee"
ROM = Path("/usr/lib/ipxe/qemu/efi-virtio.rom")  # QEMU's default virtio-net ROM (Debian ipxe-qemu)
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"


@pytest.fixture
def vm_server(tmp_path: Path) -> Iterator[ServerProcess]:
    missing = [b for b in ("qemu-system-x86_64", "socat") if shutil.which(b) is None]
    if missing or not ROM.is_file():
        pytest.skip(f"missing {', '.join(missing) or ROM} (run scripts/install-deps)")
    cat = tmp_path / "catalogue"
    shutil.copytree(FIXTURE_CATALOGUE, cat)
    srv = start_server(tmp_path, f"sqlite:///{tmp_path / 'cmt.db'}", cat, public_url=GUEST_SERVER)
    try:
        yield srv
    finally:
        srv.stop()


def boot_vm(srv: ServerProcess, tmp: Path, name: str) -> pexpect.spawn:
    port = srv.url.rsplit(":", 1)[1]
    sercon = tmp / "sercon"
    sercon.write_bytes(b"\xf8\x03")  # SeaBIOS and iPXE print on the first serial port too
    bootfile = f"{GUEST_SERVER}/boot/ipxe?{BOOT_QUERY}"
    netdev = (
        f"user,id=n0,restrict=on,bootfile={bootfile.replace(',', ',,')},"
        f"guestfwd=tcp:10.0.2.100:80-cmd:socat - TCP:127.0.0.1:{port}"
    )
    argv = [
        "-accel", "tcg", "-machine", "q35", "-m", "256", "-smp", "1", "-nodefaults", "-no-reboot",
        "-display", "none", "-serial", "stdio", "-fw_cfg", f"name=etc/sercon-port,file={sercon}",
        "-netdev", netdev, "-device", f"virtio-net-pci,netdev=n0,mac={MAC},bootindex=1", "-boot", "order=n,menu=off",
    ]  # fmt: skip
    ARTIFACTS.mkdir(exist_ok=True)
    log = (ARTIFACTS / f"ipxe-vm-{name}.log").open("w")
    child = pexpect.spawn("qemu-system-x86_64", argv, encoding="utf-8", codec_errors="replace", timeout=120)
    child.logfile_read = log
    return child


def stop(child: pexpect.spawn) -> None:
    child.terminate(force=True)
    child.close()
    if child.logfile_read:
        child.logfile_read.close()


def test_ipxe_rom_runs_the_wait_script_and_asks_again(vm_server: ServerProcess, tmp_path: Path) -> None:
    """A registered node without an intact image gets the wait script: it prints, sleeps, re-chains."""
    vm_server.anonymous().register(
        {
            "macs": [MAC],
            "lldp": {
                "chassis_id": "52:54:00:ff:00:01", "chassis_id_subtype": "mac", "port_id": "Ethernet1/3",
                "port_id_subtype": "interface-name", "system_name": "sw-r07", "ttl": 120,
            },
        }
    )  # fmt: skip
    child = boot_vm(vm_server, tmp_path, "wait")
    try:
        child.expect("iPXE")
        child.expect(r"cmt: node-3: waiting")
        child.expect(r"asking the boot server again in (\d+) s")
        # The script chains its own URL again: the server sees the same MAC a second time.
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            # iPXE URL-encodes the expanded MAC (52%3A54%3A...) and sends its build arch (i386 for BIOS).
            asks = re.findall(
                r'"GET /boot/ipxe\?mac=52(?::|%3A)54(?::|%3A)00(?::|%3A)c0(?::|%3A)ff(?::|%3A)ee&uuid=\S*&arch=\w+ HTTP/1.1" 200',
                vm_server.log_text(),
            )
            if len(asks) >= 2:
                break
            time.sleep(1)
        assert len(asks) >= 2, vm_server.log_text()[-3000:]
    finally:
        stop(child)


def test_ipxe_rom_fetches_the_live_env_for_an_unknown_mac(vm_server: ServerProcess, tmp_path: Path) -> None:
    """Unknown MAC: the discover script downloads kernel and initrd from /boot/live and boots them.

    The "kernel" here is an iPXE script standing in for the live env (the real one is built and booted
    by tests/e2e/test_reimage.py): when iPXE runs it, download and boot both went through this server.
    """
    live = vm_server.settings.effective_live_dir
    (live / "vmlinuz").write_text("#!ipxe\necho cmt-e2e: the live kernel stand-in is running\nsleep 600\n")
    child = boot_vm(vm_server, tmp_path, "discover")
    try:
        child.expect(r"cmt: unknown machine 52:54:00:c0:ff:ee")
        child.expect(r"10\.0\.2\.100/boot/live/vmlinuz\.\.\. ok")
        child.expect(r"10\.0\.2\.100/boot/live/initrd\.img\.\.\. ok")
        child.expect(r"cmt-e2e: the live kernel stand-in is running")
    finally:
        stop(child)
    assert vm_server.anonymous().nodes() == []  # a boot request alone registers nothing
