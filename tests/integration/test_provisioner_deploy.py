"""The service layer on a real database: deployments from target to ready or failed, one-time tokens,
admission (SQLite, and PostgreSQL under scripts/with-postgres)."""

from __future__ import annotations

import pytest
from provisioner_helpers import STEPS, Clock, kinds, lldp, mac, make, ready_node

from cmt_slurm.errors import BadInput, Busy, Conflict, NoMatch, NotFound, Unauthorized
from cmt_slurm.provisioner import BootMode, Provisioner
from cmt_slurm.states import NodeState, Stage
from cmt_slurm.store import Store


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def prov(store: Store, clock: Clock) -> Provisioner:
    return make(store, clock)


def test_full_reimage_from_target_to_ready(prov: Provisioner, clock: Clock) -> None:
    name = prov.register_node([mac(3)], lldp(3)).node.name
    dep = prov.set_target(name, "debian13-2026.11", "admin:alice")
    assert dep.token and dep.stage is Stage.REQUESTED and dep.total_bytes == 1000
    assert prov.get_node(name).state is NodeState.REIMAGING
    assert prov.get_node(name).target_image == "debian13-2026.11"

    clock.tick(5)
    boot = prov.boot_decision(mac(3))
    assert boot.mode is BootMode.REIMAGE and boot.image and boot.image.name == "debian13-2026.11"
    assert boot.image_url == "http://127.0.0.1:8080/images/debian13-2026.11"
    token = boot.token
    assert token and token != dep.token  # the script's token is fresh; the first one is dead now
    with pytest.raises(Unauthorized, match="wrong token"):
        prov.report(dep.id, dep.token, Stage.LIVE)

    clock.tick(30)
    prov.report(dep.id, token, Stage.LIVE)
    plan = prov.plan(dep.id, token)
    assert (plan.node, plan.image, plan.size, plan.token) == (name, "debian13-2026.11", 1000, None)
    assert plan.features[0] == "os=debian13" and "libc=2.34" in plan.features
    for stage in STEPS:
        clock.tick(10)
        prov.report(dep.id, token, stage, progress_bytes=500 if stage is Stage.TRANSFER else None)
    prov.report(dep.id, token, Stage.KEXEC, message="kexec -l done")  # same stage: progress only
    clock.tick(20)
    node = prov.node_ready(name, "debian13-2026.11", clock.now, plan.node_token)
    assert (node.state, node.current_image, node.target_image, node.boot_time) == (
        NodeState.READY, "debian13-2026.11", None, clock.now,
    )  # fmt: skip
    done = prov.get_deployment(dep.id)
    assert (done.stage, done.outcome, done.token_used, done.progress_bytes) == (
        Stage.DONE,
        "success",
        True,
        500,
    )
    assert done.stage_seconds == {
        "requested": 35.0, "live": 10.0, "transfer": 10.0, "verify": 10.0, "write": 10.0, "grow": 10.0,
        "identity": 10.0, "kexec": 20.0, "boot": 0.0,
    }  # fmt: skip
    with pytest.raises(Unauthorized, match="already used"):
        prov.report(dep.id, token, Stage.DONE)
    after = prov.boot_decision(mac(3))
    assert (after.mode, after.token) == (BootMode.LOCAL, None)
    assert prov.verify_node_token(name, plan.node_token) == f"node:{name}"
    node_events = [(k, a, b) for k, a, b in kinds(prov, name) if k == "node"]
    assert node_events == [("node", "unknown", "discovered"), ("node", "discovered", "reimaging"),
                           ("node", "reimaging", "ready")]  # fmt: skip
    stages = [b for k, _, b in kinds(prov, name) if k == "stage"]
    assert stages == ["requested", "live", *[str(s) for s in STEPS], "boot", "done"]


def test_out_of_order_report_is_a_conflict_and_changes_nothing(prov: Provisioner) -> None:
    name = ready_node(prov)
    prov.set_target(name, "debian13-2026.11", "admin:a")
    boot = prov.boot_decision(mac(3))
    assert boot.deployment and boot.token
    prov.report(boot.deployment.id, boot.token, Stage.LIVE)
    with pytest.raises(Conflict, match="live -> write is not allowed") as info:
        prov.report(boot.deployment.id, boot.token, Stage.WRITE)
    assert info.value.details["allowed"] == ["transfer", "failed"]
    assert prov.get_deployment(boot.deployment.id).stage is Stage.LIVE
    with pytest.raises(BadInput, match=r"'flashing' is not a deployment stage"):
        prov.report(boot.deployment.id, boot.token, "flashing")


def test_failure_drains_with_reason_and_clear_returns_to_a_safe_state(prov: Provisioner) -> None:
    name = ready_node(prov)
    prov.set_target(name, "debian13-2026.11", "admin:a")
    boot = prov.boot_decision(mac(3))
    assert boot.deployment and boot.token
    for stage in (Stage.LIVE, Stage.TRANSFER, Stage.VERIFY, Stage.WRITE):
        prov.report(boot.deployment.id, boot.token, stage)
    prov.report(boot.deployment.id, boot.token, Stage.FAILED, message="write: qemu-img: I/O error")
    node = prov.get_node(name)
    assert node.state is NodeState.FAILED and node.current_image is None
    assert node.reason == "cmt: reimage to debian13-2026.11 failed at write: qemu-img: I/O error"
    assert prov.get_deployment(boot.deployment.id).outcome == "failed"
    assert prov.boot_decision(mac(3)).mode is BootMode.WAIT  # the disk is no longer intact
    with pytest.raises(Conflict, match=r"r07n04' is discovered, not failed"):
        prov.clear_failed(ready_node(prov, port=4, image=None), "admin:a")
    cleared = prov.clear_failed(name, "admin:a")
    assert (cleared.state, cleared.reason) == (NodeState.DISCOVERED, None)


def test_failure_before_write_keeps_the_old_image_bootable(prov: Provisioner) -> None:
    name = ready_node(prov)
    prov.set_target(name, "debian13-2026.11", "admin:a")
    boot = prov.boot_decision(mac(3))
    assert boot.deployment and boot.token
    prov.report(boot.deployment.id, boot.token, Stage.LIVE)
    prov.report(boot.deployment.id, boot.token, Stage.TRANSFER)
    again = prov.boot_decision(mac(3))  # the node network-booted mid-transfer: agent crashed
    assert (again.mode, again.token) == (BootMode.LOCAL, None)
    node = prov.get_node(name)
    assert node.state is NodeState.FAILED and node.current_image == "rocky9-2026.10"
    assert node.reason and "failed at transfer: node network-booted again (old disk intact)" in node.reason
    assert prov.clear_failed(name, "admin:a").state is NodeState.READY


def test_every_script_fetch_issues_a_new_token_and_none_after_start(prov: Provisioner) -> None:
    name = ready_node(prov)
    prov.set_target(name, "debian13-2026.11", "admin:a")
    first, second = prov.boot_decision(mac(3)), prov.boot_decision(mac(3))
    assert first.token and second.token and first.token != second.token and second.deployment
    with pytest.raises(Unauthorized):
        prov.report(second.deployment.id, first.token, Stage.LIVE)
    prov.report(second.deployment.id, second.token, Stage.LIVE)
    events = prov.events(node=name, limit=5)
    assert any(e.kind == "auth_failed" and e.detail["why"] == "wrong token" for e in events)


def test_admission_queues_beyond_the_slot_limit(store: Store, clock: Clock) -> None:
    prov = make(store, clock, max_concurrent_reimages=1)
    a, b = ready_node(prov, 3), ready_node(prov, 4)
    prov.set_target(a, "debian13-2026.11", "admin:x")
    prov.set_target(b, "debian13-2026.11", "admin:x")
    first = prov.boot_decision(mac(3))
    assert first.mode is BootMode.REIMAGE and first.deployment and first.token
    queued = prov.boot_decision(mac(4))
    assert (queued.mode, queued.token) == (BootMode.WAIT, None)
    assert queued.deployment and queued.deployment.stage is Stage.QUEUED
    assert prov.boot_decision(mac(4)).mode is BootMode.WAIT
    prov.report(first.deployment.id, first.token, Stage.LIVE)
    for stage in STEPS:
        prov.report(first.deployment.id, first.token, stage)  # leaving grow frees the slot
    admitted = prov.boot_decision(mac(4))
    assert admitted.mode is BootMode.REIMAGE and admitted.token
    stages = [e.to_state for e in prov.events(node=b) if e.kind == "stage"]
    assert stages[-2:] == ["requested", "queued"]


def test_kexec_path_report_waits_for_a_slot(store: Store, clock: Clock) -> None:
    prov = make(store, clock, max_concurrent_reimages=1)
    a, b = ready_node(prov, 3), ready_node(prov, 4)
    ta = prov.request_features(a, ["os=debian13"], f"node:{a}")
    tb = prov.request_features(b, ["os=debian13"], f"node:{b}")
    assert ta and tb and ta.token and tb.token
    prov.report(ta.id, ta.token, Stage.LIVE)
    with pytest.raises(Busy, match="all 1 reimage slots are busy"):
        prov.report(tb.id, tb.token, Stage.LIVE)
    assert prov.get_deployment(tb.id).stage is Stage.QUEUED  # kept although the call raised
    prov.report(ta.id, ta.token, Stage.FAILED, message="test")
    assert prov.report(tb.id, tb.token, Stage.LIVE).stage is Stage.LIVE


def test_request_features_accumulates_and_is_none_for_the_running_image(prov: Provisioner) -> None:
    name = ready_node(prov)  # runs rocky9
    actor = f"node:{name}"
    assert prov.request_features(name, ["os=rocky9"], actor) is None
    dep = prov.request_features(name, ["os=debian13"], actor)
    assert dep and dep.image == "debian13-2026.11" and dep.token
    again = prov.request_features(name, ["libc=2.28"], actor)
    assert again and again.id == dep.id and again.features == ("os=debian13", "libc=2.28")
    assert again.token is None  # the first token stays valid; no second secret handed out
    assert prov.request_features(name, ["os=rocky9"], actor) is None  # cancels the pending one
    cancelled = prov.get_deployment(dep.id)
    assert (cancelled.outcome, prov.get_node(name).state) == ("cancelled", NodeState.READY)
    with pytest.raises(NoMatch):
        prov.request_features(name, ["os=windows11"], actor)
    with pytest.raises(BadInput):
        prov.request_features(name, ["os=a|os=b"], actor)


def test_set_target_errors(prov: Provisioner) -> None:
    name = ready_node(prov)
    with pytest.raises(NotFound, match="no image named 'nope'"):
        prov.set_target(name, "nope", "admin:a")
    with pytest.raises(NotFound, match="no node named 'ghost'"):
        prov.set_target("ghost", "rocky9-2026.10", "admin:a")
    dep = prov.set_target(name, "debian13-2026.11", "admin:a")
    retargeted = prov.set_target(name, "debian12-2026.11", "admin:a")
    assert retargeted.id == dep.id and retargeted.image == "debian12-2026.11"
    boot = prov.boot_decision(mac(3))
    assert boot.deployment and boot.token
    prov.report(boot.deployment.id, boot.token, Stage.LIVE)
    with pytest.raises(Conflict, match=r"is being reimaged to debian12-2026.11"):
        prov.set_target(name, "rocky9-2026.10", "admin:a")


def test_silent_deployments_expire_and_fail(prov: Provisioner, clock: Clock) -> None:
    name = ready_node(prov)
    dep = prov.set_target(name, "debian13-2026.11", "admin:a")
    assert dep.token
    prov.report(dep.id, dep.token, Stage.LIVE)
    clock.tick(3601)
    with pytest.raises(Unauthorized, match="token expired"):
        prov.report(dep.id, dep.token, Stage.TRANSFER)
    assert [d.id for d in prov.reap_expired()] == [dep.id]
    assert prov.get_node(name).reason == (
        "cmt: reimage to debian13-2026.11 failed at live: no report for 3600 s (token expired)"
    )


def test_requesting_the_old_image_during_a_running_reimage_is_a_conflict(prov: Provisioner) -> None:
    name = ready_node(prov)
    dep = prov.request_features(name, ["os=debian13"], f"node:{name}")
    assert dep and dep.token
    prov.report(dep.id, dep.token, Stage.LIVE)
    with pytest.raises(Conflict, match=r"is being reimaged to debian13-2026.11"):
        prov.request_features(name, ["os=rocky9"], f"node:{name}")


def test_plan_document_matches_the_agent_contract(prov: Provisioner) -> None:
    name = ready_node(prov)
    dep = prov.set_target(name, "debian13-2026.11", "admin:a")
    assert dep.token
    plan = prov.plan(dep.id, dep.token).as_dict()
    assert plan["hostname"] == name and plan["files"] == [] and plan["disk"] is None
    assert plan["url"] == "http://127.0.0.1:8080/images/debian13-2026.11"
    assert set(plan) >= {"deployment", "node", "image", "url", "sha256", "size", "format", "kernel_args",
                         "features", "node_token"}  # fmt: skip


def test_a_node_that_never_boots_its_script_loses_the_slot_after_the_lease(
    store: Store, clock: Clock
) -> None:
    prov = make(store, clock, max_concurrent_reimages=1)
    a, b = ready_node(prov, 3), ready_node(prov, 4)
    prov.set_target(a, "debian13-2026.11", "admin:x")
    prov.set_target(b, "debian13-2026.11", "admin:x")
    stuck = prov.boot_decision(mac(3))  # a got a script, then hangs in firmware
    assert stuck.mode is BootMode.REIMAGE and stuck.deployment and stuck.token
    assert prov.boot_decision(mac(4)).mode is BootMode.WAIT
    clock.tick(599)
    assert prov.boot_decision(mac(4)).mode is BootMode.WAIT
    clock.tick(2)
    assert prov.boot_decision(mac(4)).mode is BootMode.REIMAGE  # a's lease ran out
    with pytest.raises(Busy):
        prov.report(stuck.deployment.id, stuck.token, Stage.LIVE)  # a turns up late: waits its turn
