"""How long image choice takes: constraint parsing + select_image on a large synthetic catalogue.

Baseline, measured in the same run: the cheapest possible answer to the same question (a bare
list comprehension filtering on os tag and glibc tuple, then ``min``), so the figure says what the
policy, the parsing and the error-free path cost on top of that.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import date, timedelta

from cmt_slurm.catalogue import Catalogue, Image, select_image
from cmt_slurm.constraints import parse_constraint, requirement_from_constraint
from cmt_slurm.versions import Version

N_IMAGES = 2000
ROUNDS = 200
CONSTRAINTS = ["os:rocky9&ib", "libc:2.28", "os=debian13&libc=2.36", "", "haswell,ib", "os:el42&libc:2.30"]


def catalogue(n: int) -> Catalogue:
    images = []
    for i in range(n):
        glibc = f"2.{17 + i % 25}"
        tag = ["rocky9", "debian13", "centos7"][i % 3] if i < 30 else f"el{i % 50}"
        images.append(
            Image(
                name=f"img-{i:05d}",
                os=tag,
                os_name=f"OS {tag}",
                os_version="1",
                glibc=Version.parse(glibc),
                arch="x86_64" if i % 4 else "aarch64",
                format="qcow2",
                url=f"img-{i}.qcow2",
                sha256="0" * 64,
                size=1 << 30,
                default=(i == 1),
                built=date(2026, 1, 1) + timedelta(days=i % 300),
            )
        )
    return Catalogue.of(images)


def timed(fn: Callable[[], object], rounds: int) -> float:
    start = time.perf_counter()
    for _ in range(rounds):
        fn()
    return (time.perf_counter() - start) / rounds


def main() -> None:
    cat = catalogue(N_IMAGES)
    reqs = [requirement_from_constraint(c) for c in CONSTRAINTS]
    raw = [(r.os, tuple(r.libc.parts) if r.libc else None) for r in reqs]

    def ours() -> None:
        for r in reqs:
            select_image(cat, r)

    def baseline() -> None:
        for os_, libc in raw:
            pool = [
                i
                for i in cat.images
                if i.arch == "x86_64"
                and (os_ is None or i.os == os_)
                and (libc is None or i.glibc.parts >= libc)
            ]
            min(pool, key=lambda i: i.glibc.parts)

    def parse_only() -> None:
        for c in CONSTRAINTS:
            if c:
                parse_constraint(c)

    t_ours, t_base = timed(ours, ROUNDS), timed(baseline, ROUNDS)
    t_parse = timed(parse_only, ROUNDS * 10)
    per = len(CONSTRAINTS)
    print(f"catalogue: {N_IMAGES} images, {per} constraints per round, {ROUNDS} rounds")
    print(f"select_image:       {t_ours / per * 1e6:9.1f} us per choice")
    print(f"baseline (filter):  {t_base / per * 1e6:9.1f} us per choice   ratio {t_ours / t_base:.2f}x")
    print(f"parse_constraint:   {t_parse / (per - 1) * 1e6:9.1f} us per constraint")


if __name__ == "__main__":
    main()
