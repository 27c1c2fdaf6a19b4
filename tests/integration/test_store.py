"""The store on a real database: migrations, constraints, conditional updates, UTC times."""

from __future__ import annotations

import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from cmt_slurm.errors import Conflict
from cmt_slurm.states import NodeState, Stage
from cmt_slurm.store import Store, deployments, events, head_revision, images, nodes, tokens
from cmt_slurm.store.images import ImageRow
from cmt_slurm.store.schema import metadata

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def test_open_migrates_to_head_and_reopen_is_idempotent(db_url: str) -> None:
    s = Store.open(db_url)
    assert s.current_revision() == head_revision()
    s.dispose()
    again = Store.open(db_url)
    assert again.current_revision() == head_revision()
    again.dispose()


def test_open_without_migrate_leaves_an_empty_database(db_url: str) -> None:
    s = Store.open(db_url, migrate=False)
    assert s.current_revision() is None
    s.upgrade()
    assert s.current_revision() == head_revision()
    s.dispose()


def test_migrations_produce_exactly_the_schema_module(store: Store) -> None:
    with store.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        diffs = compare_metadata(ctx, metadata)
    assert diffs == []


def test_sqlite_runs_in_wal_mode_with_foreign_keys(store: Store) -> None:
    if store.dialect != "sqlite":
        pytest.skip("SQLite pragmas")
    with store.begin() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000


def _node(store: Store, name: str = "node-1", mac: str = "52:54:00:00:00:01") -> nodes.Node:
    with store.begin() as conn:
        n = nodes.insert(conn, name=name, state=NodeState.DISCOVERED, now=T0, port_index=1)
        nodes.add_macs(conn, n, [mac], T0)
        found = nodes.get(conn, name)
    assert found is not None
    return found


def test_node_round_trip_with_macs_and_utc_times(store: Store) -> None:
    n = _node(store)
    assert n.macs == ("52:54:00:00:00:01",)
    assert n.state is NodeState.DISCOVERED
    assert n.created == T0 and n.created.tzinfo is not None
    boot = datetime(2026, 12, 1, 14, 0, tzinfo=timezone(timedelta(hours=2)))  # 12:00 UTC
    with store.begin() as conn:
        assert nodes.update(conn, "node-1", now=T0, boot_time=boot, disks=[{"name": "vda", "size": 10}])
        by_mac = nodes.get_by_mac(conn, "52:54:00:00:00:01")
    assert by_mac is not None and by_mac.name == "node-1"
    assert by_mac.boot_time == T0 and by_mac.boot_time.utcoffset() == timedelta(0)
    assert by_mac.disks == ({"name": "vda", "size": 10},)
    assert "node_token_hash" not in by_mac.as_dict()
    assert by_mac.as_dict()["created"] == "2026-12-01T12:00:00+00:00"


def test_naive_datetimes_are_refused(store: Store) -> None:
    with pytest.raises(sa.exc.StatementError, match="naive datetime"), store.begin() as conn:
        nodes.insert(conn, name="n", state=NodeState.DISCOVERED, now=datetime(2026, 1, 1))


def test_duplicate_name_and_foreign_mac_are_conflicts(store: Store) -> None:
    a = _node(store, "node-1", "52:54:00:00:00:01")
    _node(store, "node-2", "52:54:00:00:00:02")
    with pytest.raises(Conflict, match="node name 'node-1' is already taken"), store.begin() as conn:
        nodes.insert(conn, name="node-1", state=NodeState.DISCOVERED, now=T0)
    with (
        pytest.raises(Conflict, match="MAC 52:54:00:00:00:02 belongs to node 'node-2'"),
        store.begin() as conn,
    ):
        nodes.add_macs(conn, a, ["52:54:00:00:00:02"], T0)
    with store.begin() as conn:
        still = nodes.get(conn, "node-1")
    assert still is not None and still.macs == ("52:54:00:00:00:01",)


def test_conditional_node_update_refuses_a_stale_state(store: Store) -> None:
    _node(store)
    with store.begin() as conn:
        assert nodes.update(conn, "node-1", now=T0, expect_state=NodeState.DISCOVERED, state=NodeState.READY)
        assert not nodes.update(
            conn, "node-1", now=T0, expect_state=NodeState.DISCOVERED, state=NodeState.FAILED
        )
        assert nodes.count_by_state(conn)[NodeState.READY] == 1


def test_forget_cascades_to_macs_and_deployments_but_keeps_events(store: Store) -> None:
    n = _node(store)
    with store.begin() as conn:
        d = _deployment(conn, n)
        events.append(conn, at=T0, actor="test", kind="node", node=n.name, deployment=d.id)
        assert nodes.delete(conn, n.name)
        assert nodes.get_by_mac(conn, n.macs[0]) is None
        assert deployments.get(conn, d.id) is None
        assert [e.deployment for e in events.query(conn, node=n.name)] == [d.id]


def _deployment(conn: sa.Connection, n: nodes.Node, image: str = "debian13") -> deployments.Deployment:
    return deployments.insert(
        conn,
        node_id=n.id,
        node=n.name,
        image=image,
        features=["os=debian13"],
        actor="test",
        token_hash="0" * 64,
        token_expires=T0 + timedelta(hours=1),
        now=T0,
        total_bytes=100,
    )


def test_one_active_deployment_per_node(store: Store) -> None:
    n = _node(store)
    with store.begin() as conn:
        d = _deployment(conn, n)
        assert d.stage is Stage.REQUESTED and d.active and d.features == ("os=debian13",)
    with pytest.raises(sa.exc.IntegrityError), store.begin() as conn:
        _deployment(conn, n)
    with store.begin() as conn:
        assert deployments.update(conn, d, stage=Stage.FAILED, outcome="failed", ended=T0)
        second = _deployment(conn, n, "rocky9")
        assert deployments.active_for_node(conn, n.id) == second
        assert [x.id for x in deployments.list_for_node(conn, n.id)] == [second.id, d.id]


def test_conditional_stage_update_lets_only_one_writer_advance(store: Store) -> None:
    n = _node(store)
    with store.begin() as conn:
        d = _deployment(conn, n)
    with store.begin() as conn:
        assert deployments.update(conn, d, stage=Stage.LIVE)
        assert not deployments.update(conn, d, stage=Stage.QUEUED)  # read as 'requested': stale now
        fresh = deployments.get(conn, d.id)
    assert fresh is not None and fresh.stage is Stage.LIVE


def test_concurrent_writers_on_separate_connections_advance_once(store: Store, db_url: str) -> None:
    n = _node(store)
    with store.begin() as conn:
        d = _deployment(conn, n)
    stores = [Store.open(db_url, migrate=False) for _ in range(4)]
    results: list[bool] = []
    barrier = threading.Barrier(len(stores))

    def advance(s: Store) -> None:
        barrier.wait()
        with s.begin() as conn:
            s.lock(conn, "test")
            results.append(deployments.update(conn, d, stage=Stage.LIVE))

    threads = [threading.Thread(target=advance, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for s in stores:
        s.dispose()
    assert sorted(results) == [False, False, False, True]


def test_admitted_count_ignores_expired_and_ended(store: Store) -> None:
    n1, n2 = _node(store, "n1", "52:54:00:00:00:01"), _node(store, "n2", "52:54:00:00:00:02")
    with store.begin() as conn:
        d1, d2 = _deployment(conn, n1), _deployment(conn, n2)
        assert deployments.update(conn, d1, admitted=T0)
        assert deployments.update(conn, d2, admitted=T0)
        slots = [Stage.REQUESTED, Stage.TRANSFER]
        assert deployments.count_admitted(conn, slots, T0) == 2
        assert deployments.count_admitted(conn, slots, T0 + timedelta(hours=2)) == 0
        assert [d.id for d in deployments.expired(conn, T0 + timedelta(hours=2))] == [d1.id, d2.id]
        assert deployments.update(conn, d1, outcome="cancelled", ended=T0)
        assert deployments.count_admitted(conn, slots, T0) == 1


def test_events_in_id_order_with_since_and_limit(store: Store) -> None:
    with store.begin() as conn:
        ids = [
            events.append(conn, at=T0, actor="a", kind="k", node=f"n{i % 2}", detail={"i": i, "at": T0})
            for i in range(5)
        ]
        assert [e.id for e in events.query(conn)] == ids
        assert [e.id for e in events.query(conn, limit=2)] == ids[3:]
        assert [e.id for e in events.query(conn, since_id=ids[1], limit=2)] == ids[2:4]
        assert [e.detail["i"] for e in events.query(conn, node="n1")] == [1, 3]
        assert events.query(conn)[0].detail["at"] == "2026-12-01T12:00:00+00:00"
        assert events.last_id(conn) == ids[-1]


def test_tokens_unique_names_and_revocation(store: Store) -> None:
    with store.begin() as conn:
        tokens.insert(conn, "ops", "a" * 64, T0)
    with pytest.raises(Conflict, match="'ops' already exists"), store.begin() as conn:
        tokens.insert(conn, "ops", "b" * 64, T0)
    with store.begin() as conn:
        assert [t.name for t in tokens.active(conn)] == ["ops"]
        assert tokens.revoke(conn, "ops", T0)
        assert not tokens.revoke(conn, "ops", T0)
        assert tokens.active(conn) == []
        listed = tokens.list_all(conn)
    assert listed[0].revoked == T0 and "hash" not in listed[0].as_dict()


def test_image_sync_adds_updates_and_removes(store: Store) -> None:
    a = ImageRow(
        "debian13", "debian13", "2.41", "x86_64", "debian13.qcow2", "a" * 64, 10, True, None, {"k": 1}
    )
    b = ImageRow("rocky9", "rocky9", "2.34", "x86_64", "rocky9.qcow2", "b" * 64, 20)
    with store.begin() as conn:
        r = images.sync(conn, [a, b], T0)
        assert (r.added, r.updated, r.removed) == (("debian13", "rocky9"), (), ())
        a2 = ImageRow(**{**a.__dict__, "size": 11})
        r = images.sync(conn, [a2], T0)
        assert (r.added, r.updated, r.removed) == ((), ("debian13",), ("rocky9",))
        got = images.get(conn, "debian13")
        assert got == a2 and got.default
        assert images.sync(conn, [a2], T0).updated == ()


def test_readers_do_not_wait_for_a_writer(store: Store) -> None:
    _node(store)
    with store.begin() as writer:
        nodes.update(writer, "node-1", now=T0, reason="uncommitted")
        with store.read() as reader:  # would block until the busy timeout if it took the write lock
            seen = nodes.get(reader, "node-1")
    assert seen is not None and seen.reason is None


def test_server_processes_starting_together_migrate_once(db_url: str) -> None:
    """gunicorn workers each open the store at start; on a fresh database they must not trip each other."""
    script = (
        "import sys; from cmt_slurm.store import Store; s = Store.open(sys.argv[1]); "
        "print(s.current_revision()); s.dispose()"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, db_url], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(4)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], [err for _, err in outs]
    assert {out.strip() for out, _ in outs} == {head_revision()}
