"""Server-sent events (resume by Last-Event-ID, bounded streams) and /metrics from the real server."""

from __future__ import annotations

import json
import re
import threading
import urllib.request
from typing import Any

from server_fixtures import ServerProcess
from test_server_api import lldp, register

from cmt_slurm.apiclient import parse_sse


def read_stream(server: ServerProcess, query: str = "", last_id: int | None = None) -> list[dict[str, str]]:
    """The whole of one (short) stream."""
    req = urllib.request.Request(f"{server.url}/api/v1/events/stream?{query}")
    if last_id is not None:
        req.add_header("Last-Event-ID", str(last_id))
    with urllib.request.urlopen(req, timeout=60) as resp:
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        return list(parse_sse(resp))


def in_background(fn: Any) -> tuple[threading.Thread, list[Any]]:
    out: list[Any] = []
    thread = threading.Thread(target=lambda: out.append(fn()), daemon=True)
    thread.start()
    return thread, out


def test_stream_delivers_new_events_and_progress_and_ends_by_itself(server: ServerProcess) -> None:
    register(server, "52:54:00:00:06:01", 61)
    # Without since/Last-Event-ID a stream starts at the newest event: the registration is old news.
    fresh = read_stream(server, "timeout=1")
    assert not [e for e in fresh if e.get("event") == "event"]
    mark = server.anonymous().events(limit=1)[-1]["id"]
    thread, out = in_background(lambda: read_stream(server, f"timeout=4&since={mark}"))
    dep = server.client().set_target("node-61", "debian13-2026.11")["deployment"]
    thread.join(timeout=30)
    assert not thread.is_alive(), "the stream did not end after its timeout"
    events = [e for e in out[0] if e.get("event") == "event"]
    kinds = [json.loads(e["data"])["kind"] for e in events]
    assert "node" in kinds and "stage" in kinds  # discovered -> reimaging, and the requested stage
    assert "registered" not in kinds and all(int(e["id"]) > mark for e in events)
    progress = [json.loads(e["data"]) for e in out[0] if e.get("event") == "progress"]
    assert any(p and p[0]["id"] == dep["id"] and p[0]["stage"] == "requested" for p in progress)
    assert out[0][0].get("retry") == "1000"


def test_last_event_id_resumes_without_loss_or_repeat(server: ServerProcess) -> None:
    register(server, "52:54:00:00:06:02", 62)
    before = server.anonymous().events(limit=1000)
    mark = before[-1]["id"]
    register(server, "52:54:00:00:06:03", 63)
    register(server, "52:54:00:00:06:04", 64)
    got = [e for e in read_stream(server, "timeout=2", last_id=mark) if e.get("event") == "event"]
    ids = [int(e["id"]) for e in got]
    assert ids == sorted(set(ids)) and ids and ids[0] > mark
    nodes = [json.loads(e["data"])["node"] for e in got]
    assert nodes.count("node-63") >= 1 and nodes.count("node-64") >= 1 and "node-62" not in nodes
    only = [
        json.loads(e["data"])["node"]
        for e in read_stream(server, f"timeout=2&node=node-64&since={mark}")
        if e.get("event") == "event"
    ]
    assert set(only) == {"node-64"}


def test_follow_events_reconnects_transparently(server: ServerProcess) -> None:
    start = server.anonymous().events(limit=1)[-1]["id"] if server.anonymous().events(limit=1) else 0
    client = server.anonymous()
    seen: list[dict[str, Any]] = []

    def follow() -> None:
        # The server ends every stream after 2 s here; follow_events must reconnect and keep the order.
        orig = client._request

        def short(*args: Any, **kwargs: Any) -> Any:
            req = orig(*args, **kwargs)
            if "/events/stream" in req.full_url:
                req.full_url += "&timeout=2" if "?" in req.full_url else "?timeout=2"
            return req

        client._request = short  # type: ignore[method-assign]
        for event in client.follow_events(since=start):
            seen.append(event)
            if len([e for e in seen if e["kind"] == "node"]) >= 3:
                return

    thread = threading.Thread(target=follow, daemon=True)
    thread.start()
    for i in range(3):
        register(server, f"52:54:00:00:07:0{i}", 70 + i)
        threading.Event().wait(2.5)  # each registration lands in a different stream
    thread.join(timeout=30)
    assert not thread.is_alive()
    names = [e["node"] for e in seen if e["kind"] == "node"]
    assert names == ["node-70", "node-71", "node-72"]


def metric(text: str, name: str, labels: str) -> float:
    m = re.search(rf"^{re.escape(name)}\{{{re.escape(labels)}\}} ([0-9.e+]+)$", text, re.M)
    assert m is not None, (name, labels, text[:2000])
    return float(m.group(1))


def test_metrics_count_across_workers(server: ServerProcess) -> None:
    for i in range(6):  # spread over both workers by the kernel's accept balancing
        server.http(f"/boot/ipxe?mac=52:54:00:00:08:0{i}")
    server.anonymous().register({"macs": ["52:54:00:00:08:10"], "lldp": lldp(80)})
    dep = server.client().set_target("node-80", "debian13-2026.11")["deployment"]
    script = server.http("/boot/ipxe?mac=52:54:00:00:08:10")[2].decode()
    token = script.split("cmt.token=")[1].split()[0]
    agent = server.anonymous()
    agent.report(dep["id"], token, "live")
    agent.report(dep["id"], token, "transfer")
    agent.report(dep["id"], token, "failed", message="transfer: test")
    server.http("/boot/live/vmlinuz")
    text = server.http("/metrics")[2].decode()
    assert metric(text, "cmt_boot_script_requests_total", 'mode="discover"') == 6
    assert metric(text, "cmt_boot_script_requests_total", 'mode="reimage"') == 1
    assert metric(text, "cmt_deployments_finished_total", 'outcome="failed"') == 1
    assert metric(text, "cmt_deployment_stage_seconds_count", 'stage="live"') == 1
    assert metric(text, "cmt_bytes_served_total", 'kind="live"') == len(
        (server.settings.effective_live_dir / "vmlinuz").read_bytes()
    )
    assert metric(text, "cmt_nodes", 'state="failed"') == 1
