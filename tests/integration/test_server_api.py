"""The API against a real ``cmt server`` process (gunicorn, 2 workers), on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from typing import Any

import pytest
from server_fixtures import ServerProcess

from cmt_slurm.errors import BadInput, Conflict, NotFound, Unauthorized


def lldp(port: int, switch: str = "sw-r07") -> dict[str, Any]:
    return {
        "chassis_id": "52:54:00:ff:00:01",
        "chassis_id_subtype": "mac",
        "port_id": f"Ethernet1/{port}",
        "port_id_subtype": "interface-name",
        "port_description": None,
        "system_name": switch,
        "system_description": None,
        "ttl": 120,
    }


def register(server: ServerProcess, mac: str, port: int) -> dict[str, Any]:
    return server.anonymous().register(
        {"macs": [mac], "lldp": lldp(port), "dmi": {"serial": "S1"}, "disks": []}
    )


def events(server: ServerProcess, **kw: Any) -> list[dict[str, Any]]:
    return server.anonymous().events(limit=1000, **kw)


def test_unknown_mac_gets_discovery_script_and_nothing_is_written(server: ServerProcess) -> None:
    status, headers, body = server.http("/boot/ipxe?mac=52-54-00-12-34-56&uuid=x&serial=y&arch=x86_64")
    assert status == 200
    assert headers["content-type"].startswith("text/plain")
    assert headers["x-cmt-boot-mode"] == "discover"
    script = body.decode()
    assert script.startswith("#!ipxe\n")
    assert "cmt.mode=discover" in script
    assert f"{server.url}/boot/live/vmlinuz" in script
    assert server.anonymous().nodes() == []


@pytest.mark.parametrize("query", ["", "?mac=", "?mac=zz:zz", "?mac=52:54:00:12:34:56%0Aecho%20pwned"])
def test_bad_mac_gets_a_script_that_shows_the_problem(server: ServerProcess, query: str) -> None:
    status, headers, body = server.http("/boot/ipxe" + query)
    assert status == 200
    assert headers["x-cmt-error"] == "bad_input"
    script = body.decode()
    assert script.startswith("#!ipxe\n")
    assert "pwned" not in script
    assert "chain --replace --autofree " + server.url + "/boot/ipxe?mac=${net0/mac}" in script


def test_register_names_the_node_from_lldp_and_refuses_a_name_conflict(server: ServerProcess) -> None:
    reg = register(server, "52:54:00:00:00:07", 7)
    assert reg["node"]["name"] == "node-7"
    assert reg["node"]["state"] == "discovered"
    assert reg["plan"] is None
    again = register(server, "52:54:00:00:00:07", 7)  # the agent re-registers: idempotent
    assert again["node"]["name"] == "node-7"
    with pytest.raises(Conflict, match="node-7"):
        register(server, "52:54:00:00:00:99", 7)  # another MAC on the same port name
    nodes = server.anonymous().nodes()
    assert [n["name"] for n in nodes] == ["node-7"]
    assert nodes[0]["macs"] == ["52:54:00:00:00:07"]
    assert any(e["kind"] == "conflict" for e in events(server))


def test_admin_writes_need_a_valid_token_and_failures_are_logged(server: ServerProcess) -> None:
    register(server, "52:54:00:00:00:08", 8)
    before = len(events(server))
    for token in ("", "not-a-token"):
        with pytest.raises(Unauthorized):
            server.client(token=token).set_target("node-8", "debian12-2026.11")
    status, _, body = server.http(
        "/api/v1/nodes/node-8/target",
        method="PUT",
        headers={"Authorization": "Basic Zm9vOmJhcg==", "Content-Type": "application/json"},
        data=b'{"image": "debian12-2026.11"}',
    )
    assert status == 401
    assert json.loads(body)["error"]["code"] == "unauthorized"
    new = events(server, since=None)[before:]
    assert [e["kind"] for e in new] == ["auth_failed"] * 3
    assert server.anonymous().node("node-8")["state"] == "discovered"  # nothing written
    with pytest.raises(NotFound):
        server.client().set_target("node-nope", "debian12-2026.11")


@pytest.mark.parametrize(
    ("body", "ctype", "status", "code"),
    [
        (b"{not json", "application/json", 400, "bad_input"),
        (b'["a list"]', "application/json", 400, "bad_input"),
        (b'{"image": "x"}', "text/plain", 400, "bad_input"),
        (b'{"image": 5}', "application/json", 400, "bad_input"),
        (b'{"image": "' + b"a" * (2 << 20) + b'"}', "application/json", 413, "too_large"),
    ],
)
def test_malformed_bodies_get_error_json_and_write_nothing(
    server: ServerProcess, body: bytes, ctype: str, status: int, code: str
) -> None:
    register(server, "52:54:00:00:00:09", 9)
    before = len(events(server))
    got, headers, raw = server.http(
        "/api/v1/nodes/node-9/target",
        method="PUT",
        headers={"Authorization": f"Bearer {server.admin_token}", "Content-Type": ctype},
        data=body,
    )
    assert got == status
    assert headers["content-type"] == "application/json"
    err = json.loads(raw)["error"]
    assert err["code"] == code and err["message"]
    assert len(events(server)) == before
    assert server.anonymous().node("node-9")["target_image"] is None


def test_path_tricks_in_names_are_refused(server: ServerProcess) -> None:
    for path in (
        "/images/..%2f..%2fetc%2fpasswd",
        "/images/../../etc/passwd",
        "/boot/live/..%2fcmt.db",
        "/images/%2e%2e",
    ):
        status, _headers, body = server.http(path)
        assert status == 404, path
        assert json.loads(body)["error"]["code"] == "not_found"
    with pytest.raises(BadInput):
        server.anonymous().node("a b")


def test_reimage_flow_tokens_and_out_of_order_reports(server: ServerProcess) -> None:
    admin = server.client()
    register(server, "52:54:00:00:00:0a", 10)
    dep = admin.set_target("node-10", "debian13-2026.11")["deployment"]
    assert dep["stage"] == "requested" and dep["image"] == "debian13-2026.11"

    _status, headers, body = server.http("/boot/ipxe?mac=52:54:00:00:00:0a")
    assert headers["x-cmt-boot-mode"] == "reimage"
    script = body.decode()
    token = script.split("cmt.token=")[1].split()[0]
    assert f"cmt.deployment={dep['id']}" in script
    assert f"cmt.image_url={server.url}/images/debian13-2026.11" in script

    agent = server.anonymous()
    with pytest.raises(Unauthorized):
        agent.report(dep["id"], "wrong-token", "live")
    with pytest.raises(Conflict):
        agent.report(dep["id"], token, "write")  # out of order: nothing recorded
    assert agent.deployment(dep["id"])["stage"] == "requested"
    plan = agent.call("GET", f"/api/v1/deployments/{dep['id']}", token=token, query={"plan": 1})["plan"]
    assert plan["image"] == "debian13-2026.11" and plan["url"].endswith("/images/debian13-2026.11")
    for stage in ("live", "transfer"):
        agent.report(dep["id"], token, stage)
    for i in range(1, 4):
        got = agent.report(dep["id"], token, "transfer", progress_bytes=i * 10)
        assert got["stage"] == "transfer" and got["progress_bytes"] == i * 10
    for stage in ("verify", "write", "grow", "identity", "kexec"):
        agent.report(dep["id"], token, stage)
    node = agent.ready("node-10", "debian13-2026.11", 1_800_000_000, plan["node_token"])
    assert node["state"] == "ready" and node["current_image"] == "debian13-2026.11"
    assert agent.deployment(dep["id"])["stage"] == "done"
    with pytest.raises(Unauthorized):
        agent.report(dep["id"], token, "done")  # replayed after the end
    with pytest.raises(Unauthorized):
        agent.request_features("node-10", ["os=debian12"], "wrong")
    # The node token now works for the Slurm helper's request.
    req = agent.request_features("node-10", ["os=debian12"], plan["node_token"])
    assert req["deployment"]["image"] == "debian12-2026.11"
    kinds = [e["kind"] for e in events(server, node="node-10")]
    assert kinds.count("auth_failed") >= 2


def test_admission_limits_concurrent_reimages(server_factory: Any, catalogue_dir: Any) -> None:
    srv: ServerProcess = server_factory(catalogue_dir, toml="max_concurrent_reimages = 1\n")
    admin = srv.client()
    for i in (1, 2):
        register(srv, f"52:54:00:00:01:0{i}", 20 + i)
        admin.set_target(f"node-{20 + i}", "debian13-2026.11")
    _, h1, _ = srv.http("/boot/ipxe?mac=52:54:00:00:01:01")
    _, h2, body2 = srv.http("/boot/ipxe?mac=52:54:00:00:01:02")
    assert h1["x-cmt-boot-mode"] == "reimage"
    assert h2["x-cmt-boot-mode"] == "wait"
    assert body2.decode().startswith("#!ipxe\n") and "sleep" in body2.decode()
    assert srv.anonymous().node("node-22")["deployments"][0]["stage"] == "queued"
