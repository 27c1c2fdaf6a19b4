#!/usr/bin/env python3
"""Job-start delay of a job that needs a reimage, by stage, against the floor measured in the same run.

    .venv/bin/python bench/bench_demo.py      (root; QEMU, Slurm, dnsmasq, lldpd; images cached)

One lab node is discovered and installed with image A (Debian 12), then ``sbatch --constraint=os:<B>``
reimages it to B (Debian 13) through the whole chain. The floor, measured right after on the same node:

- the same image booted directly by QEMU (``-kernel/-initrd`` from the image, the node's disk as written)
  to slurmd registered in slurmctld (no firmware, no live env, no transfer, no write);
- plus the transfer of the image's *allocated* bytes at the throughput the lab's reimage just measured.

It prints the stage table, the ratio delay / floor, and Slurm's own wait after the node was back (the
``job started`` segment: slurmctld's periodic pass, 0–30 s in 22.05).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cmt_slurm.errors import CmtError
from cmt_slurm.lab import qemu
from cmt_slurm.lab.demo import Demo, DemoOptions
from cmt_slurm.lab.demo_watch import EventFeed, Follower
from cmt_slurm.lab.timeline import breakdown, render_table

WORKDIR = (
    Path(__file__).resolve().parents[1] / "tests" / "artifacts" / f"bench-demo-{time.strftime('%H%M%S')}"
)


def direct_boot_to_registered(demo: Demo, image: object, node: str, submitted_after: float) -> float:
    """Stop the node's VM; boot its disk with the image's kernel straight from QEMU; seconds to slurmd
    registered (a boot time newer than the QEMU start, node responding)."""
    lab = demo.lab
    v = lab.find_vm(node)
    lab.stop_vm(v)
    kernel, initrd, args = image.kernel, image.initrd, image.kernel_args  # type: ignore[attr-defined]
    argv = [*qemu.vm_argv(v.spec, lab.state.accel), "-kernel", str(kernel), "-initrd", str(initrd),
            "-append", str(args)]  # fmt: skip
    for stale in (v.spec.console_socket, v.spec.qmp_socket):
        stale.unlink(missing_ok=True)
    cli = demo.ctl.client()
    t0 = time.time()
    lab.start_service(v.name, argv)
    while time.time() - t0 < 900:
        n = cli.node(node)
        if n.boot_time >= int(t0) and "NOT_RESPONDING" not in n.flags and "POWERING_UP" not in n.flags:
            return time.time() - t0
        time.sleep(0.5)
    raise SystemExit(f"bench: {node} did not register within 900 s after a direct boot")


def main() -> int:
    if os.geteuid() != 0:
        print("bench_demo: needs root (the lab); skipped")
        return 0
    demo = Demo(DemoOptions(nodes=1, workdir=WORKDIR, keep=False))
    try:
        live, built = demo.build()
        a, b = built[demo.o.image_a], built[demo.o.image_b]
        demo.up(live.directory)
        demo.install_all(a.name, a.os)
        api = demo.lab.api()
        last = api.events(limit=1)
        feed = EventFeed(api, int(last[-1]["id"]) if last else None)
        rec = demo.submit_and_follow(
            Follower(api, demo.ctl.client(), feed, demo.out), f"os:{b.os}", f"os:{b.os}"
        )
        row = breakdown(rec)
        demo.wait_done(rec.job_id, 300)
        stages = {str(e["to_state"]): e for e in rec.events}
        transfer_s = float(stages["verify"]["detail"]["seconds"])
        throughput = b.size / transfer_s
        floor_transfer = int(b.info["allocated_bytes"]) / throughput
        floor_boot = direct_boot_to_registered(demo, b, rec.node, rec.submitted)
        floor = floor_boot + floor_transfer
        total = row.total or 0.0
        print()
        print(render_table([row]))
        print(f"lab throughput (VM download of the qcow2): {throughput / 1e6:.1f} MB/s "
              f"({b.size / 1e6:.0f} MB in {transfer_s:.1f} s)")  # fmt: skip
        print(f"floor: direct QEMU boot of {b.name} to slurmd registered {floor_boot:.1f} s"
              f" + transfer of {int(b.info['allocated_bytes']) / 1e6:.0f} MB allocated at that rate"
              f" {floor_transfer:.1f} s = {floor:.1f} s")  # fmt: skip
        print(f"job-start delay with a reimage: {total:.1f} s  →  ratio delay/floor = {total / floor:.2f}")
        wait = row.seconds("job started") or 0.0
        share = 100 * wait / total if total else 0.0
        print(f"Slurm's own wait after the node was back: {wait:.1f} s ({share:.0f} % of the delay)")
    except CmtError as exc:
        print(f"bench_demo: {exc.message}" + (f" (hint: {exc.hint})" if exc.hint else ""), file=sys.stderr)
        return 1
    finally:
        demo.lab.down()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
