"""Per-request cost of the pure boot-path pieces: rendering an iPXE script and decoding an LLDP frame.

- iPXE: ``render_ipxe`` (validated context + cached sandboxed Jinja2 environment) for a reimage
  script, against two baselines measured in the same run: the same text built by one Python f-string
  (the floor: no templates, no validation) and a fresh sandboxed environment per request (what the
  cache saves).
- LLDP: ``parse_lldp`` on a real lldpd capture, against ``bytes.find`` over the same frame (the floor
  of touching its bytes once from Python).

    .venv/bin/python bench/bench_ipxe_lldp.py [--seconds S]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

from cmt_slurm.agent.lldp import parse_lldp
from cmt_slurm.ipxe import IpxeRenderer, ReimageBoot, render_ipxe

REPO = Path(__file__).resolve().parent.parent
SERVER = "http://10.0.0.1:8080"


def context(i: int) -> ReimageBoot:
    return ReimageBoot(
        server_url=SERVER,
        kernel_url=f"{SERVER}/boot/live/vmlinuz",
        initrd_url=f"{SERVER}/boot/live/initrd.img",
        node=f"node-{i % 5000}",
        image="debian13-2026.11",
        deployment=i,
        token="Zm9vYmFyZm9vYmFyZm9vYmFyZm9vYmFyZm9vYmFy",
        image_url=f"{SERVER}/images/debian13-2026.11",
        image_sha256="ab" * 32,
        disk="/dev/vda",
        extra_args=("console=tty0", "console=ttyS0,115200n8"),
    )


def fstring(i: int) -> str:
    node, kernel = f"node-{i % 5000}", f"{SERVER}/boot/live/vmlinuz"
    return (
        f"#!ipxe\necho cmt: {node}: reimaging to debian13-2026.11 (deployment {i})\n"
        f"kernel --name vmlinuz {kernel} initrd=initrd.img cmt.server={SERVER} cmt.mode=reimage "
        f"cmt.deployment={i} cmt.token=Zm9vYmFy cmt.disk=/dev/vda && goto kernel_ok ||\n"
        f"initrd --name initrd.img {SERVER}/boot/live/initrd.img && goto initrd_ok ||\nboot\n"
    )


def rate(fn: Callable[[int], object], seconds: float) -> float:
    n, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        for _ in range(50):
            fn(n)
            n += 1
    return n / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=1.5, help="time per measurement")
    s = parser.parse_args().seconds

    floor = rate(fstring, s)
    cached = rate(lambda i: render_ipxe(context(i)), s)
    fresh = rate(lambda i: IpxeRenderer().render(context(i)), s / 3)
    print("iPXE reimage script, renders per second (one core):")
    print(f"  f-string floor (baseline)             {floor:10.0f}/s")
    print(
        f"  render_ipxe (validated, cached env)   {cached:10.0f}/s  = {floor / cached:6.1f}x the floor's cost"
    )
    print(f"  fresh environment per request         {fresh:10.0f}/s  = {cached / fresh:6.1f}x slower")

    frame = (REPO / "tests/data/lldp/lldpd-local.bin").read_bytes()
    touch = rate(lambda _: frame.find(b"\xff"), s)
    parse = rate(lambda _: parse_lldp(frame), s)
    print(f"LLDP frame ({len(frame)} bytes), decodes per second:")
    print(f"  bytes.find floor (baseline)           {touch:10.0f}/s")
    print(
        f"  parse_lldp                            {parse:10.0f}/s  = {touch / parse:6.1f}x the floor's cost"
    )


if __name__ == "__main__":
    main()
