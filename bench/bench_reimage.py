"""Stage timeline of one reimage in the lab, beside the floor measured in the same run.

Reimage: a node running image A is retargeted to image B and reset (firmware → iPXE → boot script → live
env → transfer to RAM → verify → write → grow → identity → kexec → B up → ``cmt-node ready``). Times are
taken on the host when each marker first appears on the node's serial console, plus the server's own
per-stage durations. Floor: B written with plain ``qemu-img convert`` from a local file (host), and B
booted directly by QEMU (``-kernel/-initrd`` from the image, same CPU model and memory) to the same
``CMT-OS-UP`` marker. Needs root, QEMU, dnsmasq, lldpd and the cached images (first run builds them).

    sudo .venv/bin/python bench/bench_reimage.py [--workdir DIR] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from cmt_slurm.lab import directboot, images, qemu
from cmt_slurm.lab.lab import Lab

MARKERS = [
    ("firmware: iPXE running", r"iPXE initialising devices"),
    ("boot script fetched", r"/boot/ipxe\.\.\. ok"),
    ("live kernel+initrd fetched", r"initrd\.img\.\.\.[^\n]*ok"),
    ("live env up (agent starts)", r"cmt-live: starting the agent"),
    ("transfer started", r"cmt-agent: stage transfer"),
    ("transferred (verify)", r"cmt-agent: stage verify"),
    ("write started", r"cmt-agent: stage write"),
    ("written (grow)", r"cmt-agent: stage grow"),
    ("grown (identity)", r"cmt-agent: stage identity"),
    ("kexec", r"cmt-agent: stage kexec"),
    ("OS up (CMT-OS-UP)", r"CMT-OS-UP"),
    ("ready reported", r"reported ready with image"),
]


class MarkerClock(threading.Thread):
    """Notes the host time at which each marker first shows up in a console log (after ``start``)."""

    def __init__(self, log: Path, markers: list[tuple[str, str]]):
        super().__init__(daemon=True)
        self.console = qemu.ConsoleLog(log)
        self.markers = [(label, re.compile(rx)) for label, rx in markers]
        self.seen: dict[str, float] = {}
        self.t0 = time.monotonic()
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set() and len(self.seen) < len(self.markers):
            text = self.console.text()
            now = time.monotonic() - self.t0
            for label, rx in self.markers:
                if label not in self.seen and rx.search(text):
                    self.seen[label] = now
            time.sleep(0.05)


def wait(what: str, check: Any, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(1)
    raise SystemExit(f"bench: timed out waiting for {what}")


def node(lab: Lab, name: str) -> dict[str, Any] | None:
    return next((n for n in lab.api().nodes() if n["name"] == name), None)


def allocated_bytes(image: Path) -> int:
    """Bytes of guest data the qcow2 holds (``qemu-img map``: extents with data)."""
    out = subprocess.run(
        ["qemu-img", "map", "--output=json", str(image)], capture_output=True, check=True
    ).stdout
    return sum(int(e["length"]) for e in json.loads(out) if e.get("data"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workdir", type=Path, default=None, help="lab work directory (default: a temp dir)")
    ap.add_argument("--keep", action="store_true", help="leave the lab up afterwards")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench_reimage: needs root (the lab uses namespaces and taps); skipped")
        return 0
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="cmt-bench-reimage-"))
    live = images.ensure_live_env()
    a = images.ensure_image("debian12")
    b = images.ensure_image("debian13") if "debian13" in images.image_recipes() else a
    lab = Lab(workdir)
    images.publish(a, lab.catalogue_dir)
    images.publish(b, lab.catalogue_dir)
    try:
        lab.up(1, live_dir=live.directory, start_vms=False)
        v = lab.vm(1)
        t_setup = time.monotonic()
        lab.start_vm(v, blank_disk=True)
        wait("node1 to register", lambda: node(lab, "node1"), 600)
        lab.api().set_target("node1", a.name)
        wait("node1 ready with A", lambda: (n := node(lab, "node1")) and n["current_image"] == a.name, 900)
        first_install = time.monotonic() - t_setup

        dep = lab.api().set_target("node1", b.name)["deployment"]
        clock = MarkerClock(v.spec.console_log, MARKERS)
        clock.start()
        qemu.qmp(v.spec.qmp_socket, "system_reset")
        wait("node1 ready with B", lambda: (n := node(lab, "node1")) and n["current_image"] == b.name, 900)
        time.sleep(0.5)
        clock.stop.set()
        clock.join()
        reimage_total = time.monotonic() - clock.t0
        server = lab.api().deployment(int(dep["id"]))
    finally:
        if not args.keep:
            lab.down()

    floor_dir = Path(tempfile.mkdtemp(prefix="cmt-bench-floor-"))
    try:
        t = time.monotonic()
        subprocess.run(["qemu-img", "convert", "-m", "1", "-f", "qcow2", "-O", "raw", str(b.path),
                        str(floor_dir / "disk.raw")], check=True)  # fmt: skip
        floor_write = time.monotonic() - t
        argv = directboot.qemu_argv(b.kernel, b.initrd, b.kernel_args, disk=b.path, memory_mib=1536)
        floor_boot = directboot.boot_until(argv, r"CMT-OS-UP", 600).seconds
    finally:
        shutil.rmtree(floor_dir, ignore_errors=True)

    alloc = allocated_bytes(b.path)
    print(f"reimage node1: {a.name} -> {b.name}  (TCG, 1 vCPU, 1536 MiB; lab {lab.id})")
    print(f"  first install from a blank disk (discovery + LLDP + install A): {first_install:7.1f} s")
    print(f"  {'marker (host clock, from system_reset)':<44}{'t (s)':>8}{'step (s)':>10}")
    last = 0.0
    for label, _ in MARKERS:
        at = clock.seen.get(label)
        if at is None:
            print(f"  {label:<44}{'-':>8}")
            continue
        print(f"  {label:<44}{at:8.1f}{at - last:10.1f}")
        last = at
    print(f"  server stage_seconds: {json.dumps(server.get('stage_seconds', {}), sort_keys=True)}")
    wire = b.size
    print(
        f"  bytes on the wire {wire / 1e6:.1f} MB (qcow2 file) vs allocated guest data {alloc / 1e6:.1f} MB"
    )
    print(f"  (virtual size {b.virtual_size / 1e6:.0f} MB, all of it written to the disk)")
    floor = floor_write + floor_boot
    print("floor, same run:")
    print(f"  qemu-img convert from a local file (host)      {floor_write:8.1f} s")
    print(f"  direct boot -kernel/-initrd to CMT-OS-UP       {floor_boot:8.1f} s")
    print(f"  floor total                                    {floor:8.1f} s")
    ratio = reimage_total / floor
    print(f"reimage total (reset -> ready)                   {reimage_total:8.1f} s  = {ratio:.2f} x floor")
    if args.keep:
        print(f"lab left up: cmt lab down --workdir {workdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
