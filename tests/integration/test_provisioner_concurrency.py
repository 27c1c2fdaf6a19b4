"""Several server processes on one database: each thread here has its own engine, as gunicorn workers do."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from provisioner_helpers import Clock, lldp, mac, make

from cmt_slurm.errors import CmtError, Conflict
from cmt_slurm.provisioner import BootMode, Provisioner
from cmt_slurm.states import Stage
from cmt_slurm.store import Store


def race(
    db_url: str, clock: Clock, n: int, work: Callable[[Provisioner, int], Any], **settings: Any
) -> list[Any]:
    """Run ``work(provisioner, i)`` in ``n`` threads at once; results or raised CmtErrors, in order."""
    stores = [Store.open(db_url, migrate=False) for _ in range(n)]
    provs = [make(s, clock, **settings) for s in stores]
    results: list[Any] = [None] * n
    barrier = threading.Barrier(n)

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = work(provs[i], i)
        except CmtError as exc:
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for s in stores:
        s.dispose()
    return results


def test_two_workers_cannot_both_advance_one_deployment(store: Store, db_url: str) -> None:
    clock = Clock()
    prov = make(store, clock)
    name = prov.register_node([mac(1)], lldp(1)).node.name
    prov.set_target(name, "debian13-2026.11", "admin:a")
    boot = prov.boot_decision(mac(1))
    assert boot.deployment and boot.token
    dep_id, token = boot.deployment.id, boot.token
    results = race(db_url, clock, 4, lambda p, _i: p.report(dep_id, token, Stage.LIVE))
    # A repeated report of the current stage is a progress update, so late ones succeed; a racer that
    # read the old stage loses its conditional UPDATE (Conflict). Either way: one transition, one event.
    assert all(isinstance(r, Conflict) for r in results if isinstance(r, CmtError))
    assert any(not isinstance(r, CmtError) for r in results)
    assert [e.to_state for e in prov.events(node=name) if e.kind == "stage"] == ["requested", "live"]


def test_admission_holds_under_concurrent_boots(store: Store, db_url: str) -> None:
    clock = Clock()
    prov = make(store, clock, max_concurrent_reimages=2)
    for i in range(1, 6):
        name = prov.register_node([mac(i)], lldp(i)).node.name
        prov.set_target(name, "debian13-2026.11", "admin:a")
    results = race(db_url, clock, 5, lambda p, i: p.boot_decision(mac(i + 1)), max_concurrent_reimages=2)
    modes = sorted(r.mode for r in results)
    assert modes == [BootMode.REIMAGE, BootMode.REIMAGE, BootMode.WAIT, BootMode.WAIT, BootMode.WAIT]


def test_concurrent_registrations_of_one_new_node_make_one_node(store: Store, db_url: str) -> None:
    clock = Clock()
    make(store, clock)
    results = race(db_url, clock, 3, lambda p, _i: p.register_node([mac(9)], lldp(9)))
    created = [r for r in results if not isinstance(r, CmtError) and r.created]
    assert len(created) == 1
    assert all(isinstance(r, Conflict) or not r.created for r in results if r not in created)
    assert len(make(store, clock).list_nodes()) == 1
