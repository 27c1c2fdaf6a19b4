"""The service layer on a real database (SQLite, and PostgreSQL under scripts/with-postgres)."""

from __future__ import annotations

from datetime import datetime

import pytest
from provisioner_helpers import Clock, lldp, mac, make

from cmt_slurm.errors import BadInput, Busy, Conflict, NoMatch, NotFound, Unauthorized
from cmt_slurm.provisioner import BootMode, Provisioner
from cmt_slurm.states import NodeState, Stage
from cmt_slurm.store import Store

STEPS = [Stage.TRANSFER, Stage.VERIFY, Stage.WRITE, Stage.GROW, Stage.IDENTITY, Stage.KEXEC]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def prov(store: Store, clock: Clock) -> Provisioner:
    return make(store, clock)


def kinds(prov: Provisioner, node: str) -> list[tuple[str, str | None, str | None]]:
    return [(e.kind, e.from_state, e.to_state) for e in prov.events(node=node)]


def ready_node(prov: Provisioner, port: int = 3, image: str | None = "rocky9-2026.10") -> str:
    """A registered node; with ``image``, adopted as running it (as after an earlier reimage)."""
    name = prov.register_node([mac(port)], lldp(port)).node.name
    if image is not None:
        token = prov.set_target(name, image, "admin:test").token
        assert token is not None
        dep_id, dep_token = _run_to_kexec(prov, name)
        plan = prov.plan(dep_id, dep_token)  # the plan's node token becomes the node's
        prov.node_ready(name, image, None, plan.node_token)
        _NODE_TOKENS[name] = plan.node_token
    return name


_NODE_TOKENS: dict[str, str] = {}


def _run_to_kexec(prov: Provisioner, name: str) -> tuple[int, str]:
    decision = prov.boot_decision(prov.get_node(name).macs[0])
    assert decision.mode is BootMode.REIMAGE and decision.token and decision.deployment
    dep_id, token = decision.deployment.id, decision.token
    prov.report(dep_id, token, Stage.LIVE)
    for stage in STEPS:
        prov.report(dep_id, token, stage)
    return dep_id, token


def test_unknown_mac_is_named_by_lldp_and_discovered(prov: Provisioner) -> None:
    reg = prov.register_node([mac(7).upper()], lldp(7), {"serial": "SN7", "uuid": "u-7"}, [{"name": "vda"}])
    assert reg.created and reg.plan is None
    n = reg.node
    assert (n.name, n.state, n.macs, n.port_index) == ("r07n07", NodeState.DISCOVERED, (mac(7),), 7)
    assert (n.lldp_switch, n.lldp_port, n.dmi_serial, n.disks) == (
        "sw-r07",
        "Ethernet7",
        "SN7",
        ({"name": "vda"},),
    )
    assert kinds(prov, "r07n07") == [("node", "unknown", "discovered")]
    again = prov.register_node([mac(7), "52:54:00:00:01:07"], None)
    assert not again.created and again.node.macs == (mac(7), "52:54:00:00:01:07")
    assert kinds(prov, "r07n07")[-1] == ("registered", None, None)


def test_default_template_names_nodes_on_other_switches(prov: Provisioner) -> None:
    assert prov.register_node([mac(1)], lldp(12, switch="sw-other")).node.name == "node-12"


def test_a_name_held_by_another_mac_is_refused_and_logged(prov: Provisioner) -> None:
    prov.register_node([mac(7)], lldp(7))
    with pytest.raises(Conflict, match=r"'r07n07' .* is held by MACs 52:54:00:00:00:07"):
        prov.register_node([mac(8)], lldp(7))
    assert prov.get_node("r07n07").macs == (mac(7),)
    assert prov.events(limit=1)[0].kind == "conflict"
    assert prov.boot_decision(mac(8)).mode is BootMode.DISCOVER  # still unknown


def test_unknown_mac_without_lldp_or_macs_is_bad_input(prov: Provisioner) -> None:
    with pytest.raises(BadInput, match="no LLDP frame"):
        prov.register_node([mac(9)], None)
    with pytest.raises(BadInput, match="lists no MAC"):
        prov.register_node([], lldp(9))
    with pytest.raises(BadInput, match="not 6 bytes of hex"):
        prov.register_node(["nope"], lldp(9))


def test_boot_decisions_without_deployments(store: Store, clock: Clock) -> None:
    prov = make(store, clock)
    assert prov.boot_decision(mac(1)).mode is BootMode.DISCOVER
    assert make(store, clock, unknown_mac="wait").boot_decision(mac(1)).mode is BootMode.UNKNOWN
    name = prov.register_node([mac(1)], lldp(1)).node.name
    waiting = prov.boot_decision(mac(1))
    assert (waiting.mode, waiting.token) == (BootMode.WAIT, None)  # discovered: nothing on disk yet
    assert prov.get_node(name).last_seen == clock.now


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


def test_discovery_registration_picks_up_a_waiting_deployment(prov: Provisioner) -> None:
    name = ready_node(prov)
    dep = prov.set_target(name, "debian12-2026.11", "admin:a")
    reg = prov.register_node([mac(3)], lldp(3))
    assert (
        reg.plan and reg.plan.token and reg.plan.deployment == dep.id and reg.plan.image == "debian12-2026.11"
    )
    assert prov.get_deployment(dep.id).stage is Stage.IDENTIFY
    assert prov.register_node([mac(3)], lldp(3)).plan is None  # started: no second token
    prov.report(dep.id, reg.plan.token, Stage.TRANSFER)


def test_node_ready_checks_the_token_and_adopts_discovered_nodes(prov: Provisioner) -> None:
    name = ready_node(prov)
    with pytest.raises(Unauthorized, match="wrong or missing node token"):
        prov.node_ready(name, "rocky9-2026.10", None, "guess")
    with pytest.raises(NotFound):
        prov.node_ready("ghost", "rocky9-2026.10", None, "guess")
    assert prov.events(limit=1)[0].kind == "auth_failed"
    node = prov.node_ready(name, "debian12-2026.11", None, _NODE_TOKENS[name])
    assert node.current_image == "debian12-2026.11"
    assert prov.events(node=name, limit=1)[0].kind == "image"


def test_node_back_on_the_old_image_mid_deployment_failed(prov: Provisioner) -> None:
    name = ready_node(prov)
    prov.set_target(name, "debian13-2026.11", "admin:a")
    boot = prov.boot_decision(mac(3))
    assert boot.deployment and boot.token
    prov.report(boot.deployment.id, boot.token, Stage.LIVE)
    node = prov.node_ready(name, "rocky9-2026.10", None, _NODE_TOKENS[name])
    assert node.state is NodeState.FAILED and node.current_image == "rocky9-2026.10"
    assert node.reason and node.reason.endswith("failed at live: node came back running rocky9-2026.10")


def test_forget_removes_the_node_but_not_its_history(prov: Provisioner) -> None:
    name = ready_node(prov)
    prov.forget(name, "admin:a")
    with pytest.raises(NotFound):
        prov.get_node(name)
    assert kinds(prov, name)[-1] == ("forgotten", "ready", None)
    assert prov.boot_decision(mac(3)).mode is BootMode.DISCOVER


def test_admin_tokens(prov: Provisioner) -> None:
    secret = prov.create_token("ops")
    assert prov.verify_admin(secret) == "admin:ops"
    assert prov.list_tokens()[0].last_used is not None
    with pytest.raises(Unauthorized, match="not valid"):
        prov.verify_admin(secret + "x", remote="10.1.2.3")
    assert prov.events(limit=1)[0].detail == {"token": "admin", "why": "admin token not valid (unknown or revoked)",
                                               "remote": "10.1.2.3"}  # fmt: skip
    with pytest.raises(Unauthorized, match="missing admin token"):
        prov.verify_admin(None)
    with pytest.raises(Conflict):
        prov.create_token("ops")
    with pytest.raises(BadInput):
        prov.create_token("Bad Name")
    prov.revoke_token("ops")
    with pytest.raises(Unauthorized):
        prov.verify_admin(secret)
    with pytest.raises(NotFound):
        prov.revoke_token("ops")


def test_events_filters_and_limits(prov: Provisioner) -> None:
    a, b = ready_node(prov, 3, None), ready_node(prov, 4, None)
    everything = prov.events()
    assert [e.node for e in everything] == [a, b]
    assert prov.events(since_id=everything[0].id)[0].node == b
    assert [e.node for e in prov.events(newest=True)] == [b, a]
    with pytest.raises(BadInput):
        prov.events(limit=0)


def test_images_table_follows_the_catalogue(prov: Provisioner) -> None:
    result = prov.sync_images()
    assert result.added == ("debian12-2026.11", "debian13-2026.11", "rocky9-2026.10")
    assert prov.sync_images().as_dict() == {"added": [], "updated": [], "removed": []}


def test_reregistering_unchanged_logs_nothing_new(prov: Provisioner, clock: Clock) -> None:
    name = prov.register_node([mac(7)], lldp(7), disks=[{"name": "/dev/vda", "size": 10}]).node.name
    before = len(prov.events(node=name))
    clock.tick(20)
    again = prov.register_node([mac(7)], lldp(7), disks=[{"name": "/dev/vda", "size": 10}])
    assert again.node.last_seen == clock.now
    assert len(prov.events(node=name)) == before
    moved = prov.register_node([mac(7)], lldp(7, switch="sw-r08"))
    assert moved.node.lldp_switch == "sw-r08" and moved.node.disks == ({"name": "/dev/vda", "size": 10},)
    assert prov.events(node=name, limit=1)[0].detail["lldp_switch"] == "sw-r08"


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


def test_registration_fields_too_long_for_their_columns_are_bad_input(prov: Provisioner) -> None:
    with pytest.raises(BadInput, match=r"dmi.uuid: must be printable text of at most 64"):
        prov.register_node([mac(1)], lldp(1), {"uuid": "u" * 65})
    with pytest.raises(BadInput, match="arch: 'sparc'"):
        prov.register_node([mac(1)], lldp(1), arch="sparc")
    with pytest.raises(BadInput, match=r"dmi.serial"):
        prov.register_node([mac(1)], lldp(1), {"serial": "a\nb"})
    assert prov.list_nodes() == []
    assert prov.register_node([mac(1)], lldp(1), arch="aarch64").node.arch == "aarch64"


def test_node_ready_refuses_malformed_check_ins(prov: Provisioner) -> None:
    name = ready_node(prov)
    with pytest.raises(BadInput, match="image"):
        prov.node_ready(name, "x" * 129, None, _NODE_TOKENS[name])
    with pytest.raises(BadInput, match="boot_time: needs a time zone"):
        prov.node_ready(name, "rocky9-2026.10", datetime(2026, 1, 1), _NODE_TOKENS[name])
