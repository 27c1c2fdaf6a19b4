"""Per-job overhead of the cmt hooks when no reimage is needed, on real Slurm (the test mini cluster).

200 short jobs (``true``) on 2 one-CPU nodes, each asking for the os its node already runs, in three
clusters started one after the other in the same run:

- baseline: plain Slurm, static ``Features=os=debian12``, jobs ``--constraint=os=debian12``;
- cmt helpers: ``cmt slurm config --no-fast-start`` (job_submit.lua rewriting ``os:``, node_features/
  helpers with the catalogue's features, RebootProgram), jobs ``--constraint=os:debian12``;
- cmt helpers + fast start: the same plus the PrologSlurmctld that holds rebooting jobs (one
  ``cmt slurm prolog-ctld`` process per job).

Prints jobs/s for each and the ratio to the baseline, and the helper's no-argument call time (the
generated wrapper vs ``cmt-node helper``). Needs root and Debian's Slurm packages, like the tests.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests" / "integration"))

from slurm.cluster import MiniCluster, NodeSpec  # noqa: E402
from slurm.cmtconf import CMT_NODE, generate, identity  # noqa: E402

JOBS = int(os.environ.get("BENCH_HOOKS_JOBS", "200"))
SCRIPT = "#!/bin/sh\ntrue\n"


def run_jobs(c: MiniCluster, constraint: str) -> float:
    """Submit JOBS jobs, wait for all to end; jobs per second from first submit to last end."""
    script = c.root / "job.sh"
    script.write_text(SCRIPT)
    t0 = time.monotonic()
    for _ in range(JOBS):
        c.run(
            "sbatch",
            "--parsable",
            f"--chdir={c.root}",
            "-o",
            "/dev/null",
            f"--constraint={constraint}",
            str(script),
        )
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        if not c.squeue_jobs() or all(
            j["job_state"] in ("COMPLETED", "FAILED", "CANCELLED") for j in c.squeue_jobs()
        ):
            break
        time.sleep(0.2)
    else:
        raise SystemExit("bench_hooks: jobs did not finish within 900 s")
    elapsed = time.monotonic() - t0
    bad = [j["job_id"] for j in c.squeue_jobs() if j["job_state"] != "COMPLETED"]
    if bad:
        raise SystemExit(f"bench_hooks: jobs did not complete: {bad[:5]}")
    return JOBS / elapsed


def cluster(root: Path, cmt: str | None) -> MiniCluster:
    nodes = []
    for name in ("n1", "n2"):
        osr, nj = identity("debian12-2026.11", name)
        nodes.append(NodeSpec(name, os_release=osr, node_json=nj, features="" if cmt else "os=debian12"))
    if cmt is None:
        return MiniCluster(root, nodes)
    conf = generate(root / "etc", fast_start=(cmt == "fast"))
    return MiniCluster(root, nodes, extra_conf=conf.include, conf_files=conf.files)


def helper_ms(node_json: Path, argv: list[str], n: int = 20) -> float:
    env = {**os.environ, "CMT_NODE_FILE": str(node_json)}
    t0 = time.perf_counter()
    for _ in range(n):
        subprocess.run(argv, env=env, capture_output=True, check=True)
    return (time.perf_counter() - t0) / n * 1000


def main() -> int:
    if os.geteuid() != 0:
        print("bench_hooks: skipped (needs root for the Slurm mini cluster)")
        return 0
    tmp = Path(tempfile.mkdtemp(prefix="bench-hooks-"))
    results: dict[str, float] = {}
    for label, cmt, constraint in (
        ("baseline (plain Slurm, static feature)", None, "os=debian12"),
        ("cmt helpers (lua + helpers + RebootProgram)", "helpers", "os:debian12"),
        ("cmt helpers + fast-start PrologSlurmctld", "fast", "os:debian12"),
    ):
        c = cluster(tmp / (cmt or "plain"), cmt)
        with c:
            results[label] = run_jobs(c, constraint)
        print(f"{label:48s} {results[label]:7.2f} jobs/s", flush=True)
    base = next(iter(results.values()))
    for label, rate in results.items():
        print(f"  ratio {label:42s} {rate / base:6.2f}")
    gen = tmp / "helpers" / "etc" / "cmt-node-helper"
    nj = tmp / "helpers" / "nodes" / "n1" / "etc-cmt" / "node.json"
    bare = helper_ms(nj, [sys.executable, "-c", "pass"])
    wrapper, full = helper_ms(nj, [str(gen)]), helper_ms(nj, [str(CMT_NODE), "helper"])
    print(
        f"helper, no argument: wrapper {wrapper:.0f} ms, cmt-node helper {full:.0f} ms,"
        f" python -c pass {bare:.0f} ms"
    )
    print(f"({JOBS} jobs, 2 nodes x 1 CPU; load average {os.getloadavg()[0]:.1f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
