"""Boot storm: N nodes reboot into a reimage at once, against `cmt server` with its default workers.

Per simulated node (a new TCP connection per request, like real firmware and live envs):
  1. GET  /boot/ipxe?mac=...              its iPXE script (reimage mode, with a one-time token)
  2. POST /api/v1/nodes/register          the live env registers; the answer carries the plan + token
  3. POST /api/v1/deployments/{id}/report ×10: the transfer stage, then 9 progress updates
Setup (not timed): the nodes are registered and given a target through the provisioner, the way
`cmt node set-target` would; max_concurrent_reimages is N so that admission lets every node through.

Baseline, same server, same run, same client concurrency: as many GETs of a static file
(/static/dashboard.css) as the storm made requests. Also a trivial WSGI app under the same gunicorn
settings would do; the static file keeps the comparison inside the one server.

Figures: total time, requests/s, p50/p99 latency per request kind, errors (must be 0).
Run: .venv/bin/python bench/bench_boot_storm.py [--nodes 1000 5000] [--clients 32] [--db URL]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "integration"))
sys.path.insert(0, str(REPO))

from server_fixtures import FIXTURE_CATALOGUE, ServerProcess, start_server  # noqa: E402

from cmt_slurm.agent.lldp import LldpInfo  # noqa: E402
from cmt_slurm.config import Settings  # noqa: E402

IMAGE = "debian13-2026.11"
REPORTS = 10


def mac(i: int) -> str:
    return "02:00:" + ":".join(f"{b:02x}" for b in i.to_bytes(4, "big"))


def lldp(i: int) -> dict[str, object]:
    return {
        "chassis_id": "02:ff:00:00:00:01", "chassis_id_subtype": "mac", "port_id": f"Ethernet1/{i}",
        "port_id_subtype": "interface-name", "system_name": "sw-bench", "ttl": 120,
    }  # fmt: skip


def request(
    url: str, method: str = "GET", body: object = None, token: str | None = None
) -> tuple[int, bytes]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


class Recorder:
    def __init__(self) -> None:
        self.times: dict[str, list[float]] = defaultdict(list)
        self.errors: dict[str, int] = defaultdict(int)

    def timed(
        self, kind: str, url: str, method: str = "GET", body: object = None, token: str | None = None
    ) -> bytes:
        t0 = time.perf_counter()
        try:
            status, data = request(url, method, body, token)
        except OSError:
            status, data = 0, b""
        self.times[kind].append(time.perf_counter() - t0)
        if status != 200:
            self.errors[kind] += 1
        return data


def node_flow(srv: ServerProcess, rec: Recorder, i: int) -> None:
    script = rec.timed("script", f"{srv.url}/boot/ipxe?mac={mac(i)}")
    if b"cmt.mode=reimage" not in script:
        rec.errors["script-mode"] += 1
    reg = rec.timed(
        "register", f"{srv.url}/api/v1/nodes/register", "POST", {"macs": [mac(i)], "lldp": lldp(i)}
    )
    try:
        plan = json.loads(reg)["plan"]
        dep, token = plan["deployment"], plan["token"]
    except (ValueError, KeyError, TypeError):
        rec.errors["plan"] += 1
        return
    url = f"{srv.url}/api/v1/deployments/{dep}/report"
    rec.timed("report", url, "POST", {"stage": "transfer", "progress_bytes": 0}, token)
    for k in range(1, REPORTS):
        rec.timed("report", url, "POST", {"stage": "transfer", "progress_bytes": k * 1000}, token)


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def report_line(name: str, rec: Recorder, wall: float) -> None:
    total = sum(len(v) for v in rec.times.values())
    errors = sum(rec.errors.values())
    print(f"  {name:<28} {total:>7} req  {wall:7.1f} s  {total / wall:8.1f} req/s  errors {errors}")
    for kind, values in sorted(rec.times.items()):
        print(
            f"    {kind:<26} {len(values):>7}      p50 {pct(values, 0.5):7.1f} ms"
            f"  p99 {pct(values, 0.99):7.1f} ms  mean {statistics.fmean(values) * 1000:6.1f} ms"
        )
    if errors:
        print(f"    errors by kind: {dict(rec.errors)}")


def setup(srv: ServerProcess, n: int) -> None:
    prov = srv.provisioner
    for i in range(1, n + 1):
        info = LldpInfo.from_dict(lldp(i))
        prov.register_node([mac(i)], info)
        prov.set_target(f"node-{i}", IMAGE, "admin:bench")


def run(n: int, clients: int, db_url: str | None) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="cmt-bench-storm-"))
    try:
        cat = tmp / "catalogue"
        shutil.copytree(FIXTURE_CATALOGUE, cat)
        url = db_url or f"sqlite:///{tmp / 'cmt.db'}"
        defaults = Settings()  # `cmt server` as installed: its default workers and threads
        srv = start_server(
            tmp, url, cat, workers=defaults.workers, threads=defaults.threads,
            toml=f"max_concurrent_reimages = {n + 1}\n", access_log=False,
        )  # fmt: skip
        try:
            s = srv.settings
            print(
                f"\nN = {n} nodes, {clients} concurrent clients; server: {s.workers} workers"
                f" x {s.threads} threads, db {url.split(':', 1)[0]}"
            )
            t0 = time.perf_counter()
            setup(srv, n)
            print(f"  setup (register + set target via the provisioner): {time.perf_counter() - t0:.1f} s")
            storm = Recorder()
            t0 = time.perf_counter()
            with ThreadPoolExecutor(clients) as pool:
                list(pool.map(lambda i: node_flow(srv, storm, i), range(1, n + 1)))
            storm_wall = time.perf_counter() - t0
            total = sum(len(v) for v in storm.times.values())
            base = Recorder()
            t0 = time.perf_counter()
            with ThreadPoolExecutor(clients) as pool:
                list(
                    pool.map(lambda _: base.timed("static", f"{srv.url}/static/dashboard.css"), range(total))
                )
            base_wall = time.perf_counter() - t0
            report_line("boot storm", storm, storm_wall)
            report_line("baseline: static file", base, base_wall)
            print(f"  storm/baseline throughput: {(total / storm_wall) / (total / base_wall):.2f}")
            done = sum(
                1 for d in srv.provisioner.active_deployments() if d.progress_bytes == (REPORTS - 1) * 1000
            )
            print(f"  deployments with all reports recorded: {done}/{n}")
        finally:
            srv.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--nodes", type=int, nargs="+", default=[1000, 5000])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument(
        "--db", default=os.environ.get("CMT_BENCH_DB_URL"), help="default: SQLite in a temp dir"
    )
    args = parser.parse_args()
    print(f"boot storm benchmark on {os.cpu_count()} CPUs (client and server share them)")
    for n in args.nodes:
        run(n, args.clients, args.db)


if __name__ == "__main__":
    main()
