"""``GET /``: the dashboard, server-rendered; ``GET /ui/panels``: the part the page re-fetches live."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, render_template

from ..states import SLOT_STAGES, NodeState
from ..store.events import Event
from .state import server_state

bp = Blueprint("ui", __name__)

RECENT_EVENTS = 30


def _filesize(n: int | None) -> str:
    if n is None:
        return "–"
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"


def _ago(when: datetime | None, now: datetime) -> str:
    if when is None:
        return "never"
    s = int((now - when).total_seconds())
    if s < 60:
        return f"{max(s, 0)} s ago"
    if s < 3600:
        return f"{s // 60} min ago"
    if s < 86400:
        return f"{s // 3600} h ago"
    return when.strftime("%Y-%m-%d %H:%M")


def _context() -> dict[str, Any]:
    state = server_state()
    prov = state.provisioner
    now = datetime.now(UTC)
    active = {d.node: d for d in prov.active_deployments()}
    rows = []
    for node in prov.list_nodes():
        dep = active.get(node.name)
        pct = ""
        if dep is not None and dep.total_bytes and dep.progress_bytes is not None:
            pct = f"{100 * dep.progress_bytes // dep.total_bytes}%"
        rows.append({"node": node, "deployment": dep, "percent": pct, "last_seen": _ago(node.last_seen, now)})
    counts = {str(s): n for s, n in prov.node_counts().items()}
    events = list(reversed(prov.events(limit=RECENT_EVENTS)))
    return {
        "nodes": rows,
        "counts": [(s.value, counts.get(s.value, 0)) for s in NodeState if s is not NodeState.UNKNOWN],
        "in_transfer": sum(1 for d in active.values() if d.stage in SLOT_STAGES),
        "max_reimages": state.settings.max_concurrent_reimages,
        "images": [i.to_json() for i in state.catalogue().images],
        "events": [_event_view(e) for e in events],
    }


def _event_view(e: Event) -> dict[str, Any]:
    return {
        "at": e.at.strftime("%Y-%m-%d %H:%M:%S"),
        "kind": e.kind,
        "node": e.node,
        "from_state": e.from_state,
        "to_state": e.to_state,
        "actor": e.actor,
    }


@bp.app_template_filter("filesize")
def filesize_filter(n: int | None) -> str:
    return _filesize(n)


@bp.get("/")
def dashboard() -> str:
    return render_template("dashboard.html", **_context())


@bp.get("/ui/panels")
def panels() -> str:
    return render_template("panels.html", **_context())
