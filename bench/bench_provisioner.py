"""What one reimage costs the database: every provisioner call of a whole deployment, end to end.

Per deployment: set_target, boot_decision (admission + token), plan, 7 stage reports, 20 progress
reports, node_ready. Baseline, measured in the same run on the same database: the same number of bare
one-row transactions (an event insert each), i.e. what the backend's commit alone costs. SQLite always;
PostgreSQL too when CMT_TEST_PG_URL is set (run under scripts/with-postgres).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "integration"))
from provisioner_helpers import Clock, lldp, mac, make

from cmt_slurm.states import Stage
from cmt_slurm.store import Store, events

NODES = 20
PROGRESS = 20
STEPS = [Stage.LIVE, Stage.TRANSFER, Stage.VERIFY, Stage.WRITE, Stage.GROW, Stage.IDENTITY, Stage.KEXEC]
CALLS_PER_DEPLOYMENT = 3 + len(STEPS) + PROGRESS + 1


def deployments(store: Store) -> float:
    clock = Clock()
    prov = make(store, clock, max_concurrent_reimages=NODES)
    names = [prov.register_node([mac(i)], lldp(i)).node.name for i in range(1, NODES + 1)]
    start = time.perf_counter()
    for i, name in enumerate(names, 1):
        prov.set_target(name, "debian13-2026.11", "admin:bench")
        boot = prov.boot_decision(mac(i))
        assert boot.deployment and boot.token
        dep, token = boot.deployment.id, boot.token
        plan = prov.plan(dep, token)
        for stage in STEPS:
            prov.report(dep, token, stage)
            if stage is Stage.TRANSFER:
                for k in range(PROGRESS):
                    prov.report(dep, token, stage, progress_bytes=k * 50)
        prov.node_ready(name, "debian13-2026.11", clock.now, plan.node_token)
    return time.perf_counter() - start


def baseline(store: Store, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        with store.begin() as conn:
            events.append(conn, at=Clock()(), actor="bench", kind="baseline")
    return time.perf_counter() - start


def run(label: str, url: str) -> None:
    store = Store.open(url)
    total = deployments(store)
    calls = NODES * CALLS_PER_DEPLOYMENT
    base = baseline(store, calls)
    store.dispose()
    print(
        f"{label:10} {NODES} deployments, {calls} calls: {total * 1000 / NODES:7.1f} ms/deployment, "
        f"{total * 1e6 / calls:7.0f} µs/call | baseline bare commit {base * 1e6 / calls:7.0f} µs "
        f"(x{total / base:.1f})"
    )


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        run("sqlite", f"sqlite:///{tmp}/bench.db")
    pg = os.environ.get("CMT_TEST_PG_URL")
    if pg:
        schema = "bench_provisioner"
        admin = sa.create_engine(pg)
        with admin.begin() as conn:
            conn.execute(sa.text(f"DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"))
        try:
            run("postgresql", sa.make_url(pg).update_query_dict({"options": f"-csearch_path={schema}"})
                .render_as_string(hide_password=False))  # fmt: skip
        finally:
            with admin.begin() as conn:
                conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
            admin.dispose()
    else:
        print("postgresql skipped: CMT_TEST_PG_URL not set (run under scripts/with-postgres)")


if __name__ == "__main__":
    main()
