"""The rendered scripts run in Debian's real iPXE (1.0.0+git-20190125) inside QEMU (TCG), BIOS and UEFI.

One VM boots `ipxe.lkrn` under SeaBIOS (or `ipxe.efi` under OVMF, Debian's ovmf package); QEMU's user
network (restrict=on) hands it a DHCP filename with the same `${...}` query the dnsmasq config uses,
and a guestfwd sends every HTTP connection to 10.0.2.100:80 to a one-shot responder process that logs
the request and answers from a directory. Each fetch of
/boot/ipxe gets the next script of a sequence, so one boot walks through:

1. ``unknown``: prints the MAC, waits, asks again (``chain --replace``);
2. ``wait``: prints the reason, asks again;
3. ``reimage`` with a kernel URL that answers 404: two attempts, the labelled error, then asks again;
4. ``reimage`` that works: kernel (the same iPXE binary stands in for the live kernel) + initrd + boot;
   under BIOS the booted "kernel" shows the command line it received;
5. ``local``: ``exit`` hands back to the firmware, which tries its next boot devices.

This proves that every command the templates use (`inc`, `iseq`, `set ...:int32`, `sleep`,
`chain --replace --autofree`, `kernel --name --timeout`, `initrd --name --timeout`, `${netX/mac}`,
`${serial:uristring}`, `${buildarch}`) exists in the iPXE Debian ships, and that the retry loops count
as intended. Two more boots give the VM a disk whose boot sector prints a marker: both `local` methods
(`exit` to the firmware, `sanboot --drive 0x80`) must reach it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cmt_slurm.ipxe import BOOT_QUERY, LocalBoot, ReimageBoot, UnknownMac, WaitBoot, render_ipxe

pytestmark = pytest.mark.qemu

IPXE_LKRN = Path("/usr/lib/ipxe/ipxe.lkrn")
IPXE_EFI = Path("/usr/lib/ipxe/ipxe.efi")
OVMF_CODE = Path("/usr/share/OVMF/OVMF_CODE_4M.fd")
OVMF_VARS = Path("/usr/share/OVMF/OVMF_VARS_4M.fd")
SERVER = "http://10.0.2.100"
MAC = "52:54:00:12:34:56"  # QEMU's default for the first NIC

RESPONDER = r"""
import sys
from pathlib import Path

state = Path(sys.argv[1])
request = sys.stdin.buffer.readline().decode("latin-1").strip()
while sys.stdin.buffer.readline() not in (b"\r\n", b"\n", b""):
    pass
with open(state / "requests.log", "a") as log:
    log.write(request + "\n")
path = request.split(" ")[1] if request.count(" ") >= 2 else "/"
if path.startswith("/boot/ipxe"):
    n = sum(1 for line in open(state / "requests.log") if " /boot/ipxe" in line)
    script = state / f"boot{n}.ipxe"
    body = script.read_bytes() if script.exists() else b"#!ipxe\necho cmt-test: end of sequence\nexit 1\n"
    status = "200 OK"
elif (state / "files" / path.lstrip("/").replace("/", "_")).is_file():
    body, status = (state / "files" / path.lstrip("/").replace("/", "_")).read_bytes(), "200 OK"
else:
    body, status = b"not found\n", "404 Not Found"
head = f"HTTP/1.0 {status}\r\nContent-Type: application/octet-stream\r\nContent-Length: {len(body)}\r\n"
sys.stdout.buffer.write((head + "Connection: close\r\n\r\n").encode() + body)
sys.stdout.buffer.flush()
"""


def reimage(kernel: str) -> ReimageBoot:
    return ReimageBoot(
        server_url=SERVER,
        kernel_url=f"{SERVER}{kernel}",
        initrd_url=f"{SERVER}/boot/live/initrd.img",
        node="node-7",
        image="debian13-2026.11",
        deployment=42,
        token="tok-42_x",
        image_url=f"{SERVER}/images/debian13-2026.11",
        image_sha256="ab" * 32,
        disk="/dev/vda",
        retries=2,
        retry_delay=1,
        failure_delay=1,
    )


def console_text(raw: bytes) -> str:
    """Serial output as one string: escape sequences and SeaBIOS's 80-column wrapping removed."""
    text = raw.decode("latin-1")
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)
    return re.sub(r"[\r\n]", "", text)


def boot_sector(message: bytes) -> bytes:
    """A 512-byte MBR whose code writes ``message`` to the first serial port, then halts (x86 real mode)."""
    code = bytes.fromhex(
        "31c0"  # xor ax, ax
        "8ed8"  # mov ds, ax
        "fc"  # cld
        "baf803"  # mov dx, 0x3f8
        "be167c"  # mov si, 0x7c16 (the message, right after this code)
        "ac"  # loop: lodsb
        "84c0"  # test al, al
        "7403"  # jz done
        "ee"  # out dx, al
        "ebf8"  # jmp loop
        "f4"  # done: hlt
        "ebfd"  # jmp done
    )
    assert len(code) == 0x16
    body = code + message + b"\0"
    return body.ljust(510, b"\0") + b"\x55\xaa"


def boot_vm(
    tmp_path: Path, scripts: list[str], until: str, disk: bytes | None = None, firmware: str = "bios"
) -> tuple[str, list[str]]:
    """Boot iPXE (``bios``: SeaBIOS + ipxe.lkrn; ``efi``: OVMF + ipxe.efi); the n-th fetch of /boot/ipxe
    gets ``scripts[n-1]``, and /boot/live/vmlinuz is that same iPXE binary. Returns (console, requests)."""
    ipxe = IPXE_LKRN if firmware == "bios" else IPXE_EFI
    if shutil.which("qemu-system-x86_64") is None or not ipxe.is_file():
        pytest.skip("needs qemu-system-x86 and ipxe (run scripts/install-deps)")
    if firmware == "efi" and not (OVMF_CODE.is_file() and OVMF_VARS.is_file()):
        pytest.skip("needs Debian's ovmf package for the UEFI boot")
    state = tmp_path / "state"
    (state / "files").mkdir(parents=True)
    for i, script in enumerate(scripts, 1):
        (state / f"boot{i}.ipxe").write_text(script)
    shutil.copy(ipxe, state / "files" / "boot_live_vmlinuz")
    (state / "files" / "boot_live_initrd.img").write_bytes(b"not a real initrd\n")
    responder = tmp_path / "responder.py"
    responder.write_text(RESPONDER)
    sercon = tmp_path / "sercon"
    sercon.write_bytes(b"\xf8\x03")  # SeaBIOS: copy VGA text output to the serial port at 0x3f8
    serial = tmp_path / "serial.log"
    bootfile = f"{SERVER}/boot/ipxe?{BOOT_QUERY}".replace(",", ",,")
    netdev = (
        f"user,id=n0,restrict=on,bootfile={bootfile},"
        f"guestfwd=tcp:10.0.2.100:80-cmd:{sys.executable} {responder} {state}"
    )
    cmd = [
        "qemu-system-x86_64",
        *("-accel", "tcg", "-m", "512", "-display", "none", "-no-reboot"),
        *("-serial", f"file:{serial}", "-kernel", str(ipxe)),
        *("-smbios", "type=1,serial=A B/7"),
        *("-netdev", netdev, "-device", "virtio-net-pci,netdev=n0"),
    ]
    if firmware == "bios":
        cmd += ["-fw_cfg", f"name=etc/sercon-port,file={sercon}"]
    else:
        # OVMF starts an EFI application given as -kernel; its console is on the serial port already
        shutil.copy(OVMF_VARS, tmp_path / "vars.fd")
        cmd += ["-machine", "q35", "-drive", f"if=pflash,format=raw,readonly=on,file={OVMF_CODE}"]
        cmd += ["-drive", f"if=pflash,format=raw,file={tmp_path / 'vars.fd'}"]
    if disk is not None:
        image = tmp_path / "disk.img"
        image.write_bytes(disk.ljust(1 << 20, b"\0"))
        cmd += ["-drive", f"file={image},format=raw,if=ide,index=0"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        for _ in range(1800):  # a bounded wait for the marker of the last step
            if proc.poll() is not None:
                break
            if serial.exists() and until in console_text(serial.read_bytes()):
                break
            time.sleep(0.1)
    finally:
        proc.kill()
        _, err = proc.communicate(timeout=30)
    log = (state / "requests.log").read_text().splitlines() if (state / "requests.log").exists() else []
    text = console_text(serial.read_bytes()) if serial.exists() else ""
    if until not in text:
        raise AssertionError(f"the VM never showed {until!r}: {err.decode()[-500:]}\n{text[-3000:]}")
    return text, log


#: per firmware: what `exit` from the local script leads to (no disk attached), and ${buildarch}.
#: SeaBIOS runs out of boot devices; under UEFI control returns through the iPXE that step 4 booted to
#: the one OVMF started, whose autoboot then ends (OVMF's next boot option follows, slowly under TCG).
END = {"bios": ("No bootable device", "i386"), "efi": ("No more network devices", "x86_64")}


@pytest.fixture(params=["bios", "efi"])
def qemu_run(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, list[str], str]:
    scripts = [
        render_ipxe(UnknownMac(server_url=SERVER, mac=MAC, retry_delay=1)),
        render_ipxe(WaitBoot(server_url=SERVER, node="node-7", reason="2 reimages running", retry_delay=1)),
        render_ipxe(reimage("/boot/live/missing")),
        render_ipxe(reimage("/boot/live/vmlinuz")),
        render_ipxe(LocalBoot(server_url=SERVER, node="node-7")),
    ]
    firmware = str(request.param)
    text, log = boot_vm(tmp_path, scripts, END[firmware][0], firmware=firmware)
    return text, log, firmware


@pytest.mark.parametrize("method", ["exit", "sanboot"])
def test_local_boot_reaches_the_disk(tmp_path: Path, method: str) -> None:
    # `exit`: back to SeaBIOS, whose next boot device is the disk; `sanboot`: iPXE boots drive 0x80 itself
    script = render_ipxe(LocalBoot(server_url=SERVER, node="node-7", method=method))
    text, log = boot_vm(tmp_path, [script], "CMT-DISK-BOOTED", disk=boot_sector(b"CMT-DISK-BOOTED\r\n"))
    assert len(log) == 1
    shown = "booting BIOS drive 0x80" if method == "sanboot" else "booting from the local disk"
    assert text.index(f"cmt: node-7: {shown}") < text.index("CMT-DISK-BOOTED")
    assert "ERROR" not in text


def test_scripts_run_in_debian_ipxe(qemu_run: tuple[str, list[str], str]) -> None:
    text, log, firmware = qemu_run
    end, arch = END[firmware]
    paths = [line.split(" ")[1].split("?")[0] for line in log]
    assert paths == [
        "/boot/ipxe",  # 1 unknown
        "/boot/ipxe",  # 2 wait
        "/boot/ipxe",  # 3 reimage, kernel 404 twice
        "/boot/live/missing",
        "/boot/live/missing",
        "/boot/ipxe",  # 4 reimage that boots
        "/boot/live/vmlinuz",
        "/boot/live/initrd.img",
        "/boot/ipxe",  # 5 local, fetched again by the iPXE that step 4 booted (BIOS: via the NIC ROM)
    ]
    # iPXE filled in the query itself; the serial number needed :uristring for its space
    query = log[0].split(" ")[1].split("?")[1]
    assert query.startswith("mac=52%3A54%3A00%3A12%3A34%3A56&uuid=")
    assert "&serial=A%20B" in query
    assert query.endswith(f"&arch={arch}")

    expected_in_order = [
        f"cmt: this machine (MAC {MAC}) is not known to the boot server {SERVER}",
        "cmt: node-7: waiting: 2 reimages running",
        "cmt: node-7: reimaging to debian13-2026.11 (deployment 42)",
        "cmt: live kernel download failed (attempt 1 of 2), retrying in 1 s",
        f"cmt: ERROR: could not download the live kernel {SERVER}/boot/live/missing (2 attempts)",
        "cmt: asking the boot server again in 1 s",
        "cmt: starting the live reimager",
        "iPXE initialising devices",  # the image booted as the live kernel starts
        "cmt: node-7: booting from the local disk (next boot device)",
        end,  # the firmware went on to its next boot device
    ]
    if firmware == "bios":
        # ipxe.lkrn runs its command line as a script: proof that the kernel got ours
        expected_in_order.insert(8, f"cmt.server={SERVER}: command not found")
    pos = 0
    for needle in expected_in_order:
        found = text.find(needle, pos)
        assert found >= 0, f"{needle!r} not found after position {pos}:\n{text[pos : pos + 2000]}"
        pos = found + len(needle)
    assert "attempt 2 of 2" not in text  # the second failure goes to the error label, not another retry
