"""The floor of a reimage: each node image booted directly by QEMU (``-kernel/-initrd`` from its /boot,
disk attached) until its OS prints ``CMT-OS-UP``; the live env booted until ``CMT-LIVE-UP``.

Baseline, measured in the same run: the live kernel with no initrd and no disk, until its banner on the
early console (firmware + kernel decompression under this accelerator), which no OS boot can beat. The demo
divides its job-start delay by the image's floor (plus its transfer) to report how much reimaging costs.

    .venv/bin/python bench/bench_boot_floor.py [--runs N] [recipe ...]     (root; images cached or built)
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys

from cmt_slurm.lab import images
from cmt_slurm.lab.accel import probe_accel
from cmt_slurm.lab.directboot import boot_until, qemu_argv

TIMEOUT = 600.0


def timed(argv: list[str], marker: str, runs: int) -> tuple[list[float], list[str]]:
    secs, uptimes = [], []
    for _ in range(runs):
        r = boot_until(argv, marker, TIMEOUT)
        secs.append(r.seconds)
        up = re.search(r"uptime=([\d.]+)", r.match.group(0))
        uptimes.append(up.group(1) if up else "-")
    return secs, uptimes


def show(label: str, secs: list[float], uptimes: list[str], baseline: float) -> None:
    med = statistics.median(secs)
    runs = ", ".join(f"{s:.1f}" for s in secs)
    print(
        f"{label:<34} {med:7.1f} s  ({runs}; guest uptime {', '.join(uptimes)})"
        f"  = {med / baseline:5.1f}x baseline"
    )


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("recipes", nargs="*")
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    live = images.ensure_live_env()
    accel = probe_accel(live.kernel)
    print(f"accelerator: {accel.name} ({accel.reason}); 1 vCPU, 1 GiB; runs per row: {args.runs}")

    # earlyprintk: the banner right after decompression, before the console driver registers.
    base_argv = qemu_argv(
        live.kernel, None, "console=ttyS0 earlyprintk=serial,ttyS0 panic=-1", accel=accel.name, net=False
    )
    base_secs, _ = timed(base_argv, r"Linux version", args.runs)
    baseline = statistics.median(base_secs)
    print(
        f"{'baseline: QEMU start -> kernel banner':<34} {baseline:7.1f} s"
        f"  ({', '.join(f'{s:.1f}' for s in base_secs)})"
    )

    live_argv = qemu_argv(live.kernel, live.initrd, "console=ttyS0 quiet cmt.selftest", accel=accel.name)
    show(
        f"live env -> CMT-LIVE-UP ({live.sizes['initrd'] / 1e6:.0f} MB)",
        *timed(live_argv, r"CMT-LIVE-UP [^\n]*\n", args.runs),
        baseline,
    )

    for name in args.recipes or images.image_recipes():
        image = images.ensure_image(name)
        argv = qemu_argv(image.kernel, image.initrd, image.kernel_args, disk=image.path, accel=accel.name)
        show(f"{image.name} -> CMT-OS-UP", *timed(argv, r"CMT-OS-UP [^\n]*\n", args.runs), baseline)
    return 0


if __name__ == "__main__":
    sys.exit(main())
