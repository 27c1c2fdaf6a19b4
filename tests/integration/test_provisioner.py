"""The service layer on a real database: nodes, registration, node check-in, admin tokens, events
(SQLite, and PostgreSQL under scripts/with-postgres)."""

from __future__ import annotations

from datetime import datetime

import pytest
from provisioner_helpers import NODE_TOKENS, Clock, kinds, lldp, mac, make, ready_node

from cmt_slurm.errors import BadInput, Conflict, NotFound, Unauthorized
from cmt_slurm.provisioner import BootMode, Provisioner
from cmt_slurm.states import NodeState, Stage
from cmt_slurm.store import Store


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def prov(store: Store, clock: Clock) -> Provisioner:
    return make(store, clock)


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
    node = prov.node_ready(name, "debian12-2026.11", None, NODE_TOKENS[name])
    assert node.current_image == "debian12-2026.11"
    assert prov.events(node=name, limit=1)[0].kind == "image"


def test_node_back_on_the_old_image_mid_deployment_failed(prov: Provisioner) -> None:
    name = ready_node(prov)
    prov.set_target(name, "debian13-2026.11", "admin:a")
    boot = prov.boot_decision(mac(3))
    assert boot.deployment and boot.token
    prov.report(boot.deployment.id, boot.token, Stage.LIVE)
    node = prov.node_ready(name, "rocky9-2026.10", None, NODE_TOKENS[name])
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
        prov.node_ready(name, "x" * 129, None, NODE_TOKENS[name])
    with pytest.raises(BadInput, match="boot_time: needs a time zone"):
        prov.node_ready(name, "rocky9-2026.10", datetime(2026, 1, 1), NODE_TOKENS[name])
