"""``/api/v1/events``: the audit trail, as a filtered list and as a server-sent-events stream.

The stream (``GET /events/stream``) polls the database, so it works across gunicorn workers and boot
servers sharing PostgreSQL. It sends

* ``event: event`` with ``id: <event id>`` for each new audit row (a client that reconnects with
  ``Last-Event-ID`` resumes after it; a new client starts at the newest row unless ``?since=`` says
  otherwise);
* ``event: progress``, a list of running deployments, whenever one of them moved (dashboard bars);
* a ``: keepalive`` comment every ``HEARTBEAT_S`` so proxies and clients see the stream alive.

Each stream ends after ``STREAM_MAX_S`` on purpose: it holds one of the worker's threads, and a stuck or
forgotten client must not keep it forever. ``retry:`` tells browsers to reconnect after a second, and
``Last-Event-ID`` makes the reconnect lossless. The app config keys ``CMT_SSE_POLL_S``,
``CMT_SSE_HEARTBEAT_S`` and ``CMT_SSE_MAX_S`` override the defaults; ``?timeout=N`` asks for a shorter
stream (never a longer one); ``?progress=0`` leaves the progress messages out.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from ..errors import BadInput, CmtError
from .state import server_state
from .validate import NAME, query_int

bp = Blueprint("events", __name__, url_prefix="/events")
log = logging.getLogger("cmt_slurm.server")

POLL_S = 1.0
HEARTBEAT_S = 15.0
STREAM_MAX_S = 300.0
MAX_LIMIT = 1000


def _node_filter() -> str | None:
    node = request.args.get("node") or None
    if node is not None and not NAME.match(node):
        raise BadInput(f"node: {node[:80]!r} is not a node name")
    return node


@bp.get("")
def list_events() -> Response:
    node = _node_filter()
    since = query_int("since")
    limit = query_int("limit", minimum=1, maximum=MAX_LIMIT) or 100
    events = server_state().provisioner.events(node=node, since_id=since, limit=limit)
    return jsonify({"events": [e.as_dict() for e in events]})


def _sse(kind: str, data: Any, event_id: int | None = None) -> str:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {kind}\ndata: {json.dumps(data, separators=(',', ':'), default=str)}\n\n"


@bp.get("/stream")
def stream() -> Response:
    node = _node_filter()
    prov = server_state().provisioner
    resume = request.headers.get("Last-Event-ID", "").strip()
    since = int(resume) if resume.isdigit() else query_int("since")
    if since is None:
        since = prov.last_event_id()
    cfg = current_app.config
    interval = float(cfg.get("CMT_SSE_POLL_S", POLL_S))
    heartbeat = float(cfg.get("CMT_SSE_HEARTBEAT_S", HEARTBEAT_S))
    lifetime = float(cfg.get("CMT_SSE_MAX_S", STREAM_MAX_S))
    # A client may ask for a shorter stream (scripts, tests); never a longer one.
    asked = query_int("timeout", minimum=1, maximum=int(lifetime))
    if asked is not None:
        lifetime = float(asked)
    # Progress snapshots cost a query of every active deployment per poll; `cmt events --follow` skips them.
    with_progress = request.args.get("progress", "1") not in ("0", "false", "no")

    def generate(last_id: int) -> Iterator[str]:
        # The response has started: an error can no longer become an error document, so the stream
        # ends with a comment saying why and the client reconnects (resuming by id) a second later.
        try:
            yield from poll(last_id)
        except CmtError as exc:
            log.warning("event stream ended: %s", exc)
            yield f": stream ended: {exc.code}\n\n"
        except Exception:
            log.exception("event stream failed")
            yield ": stream ended: internal error\n\n"

    def poll(last_id: int) -> Iterator[str]:
        start = time.monotonic()
        last_beat = start
        last_progress: Any = None
        yield "retry: 1000\n\n"
        while time.monotonic() - start < lifetime:
            sent = False
            for event in prov.events(node=node, since_id=last_id, limit=MAX_LIMIT):
                last_id = event.id
                sent = True
                yield _sse("event", event.as_dict(), event.id)
            progress = (
                [d.as_dict() for d in prov.active_deployments() if node is None or d.node == node]
                if with_progress
                else []
            )
            if with_progress and progress != last_progress:
                last_progress = progress
                yield _sse("progress", [_progress_view(d) for d in progress])
                sent = True
            now = time.monotonic()
            if sent:
                last_beat = now
            elif now - last_beat >= heartbeat:
                last_beat = now
                yield ": keepalive\n\n"
            time.sleep(interval)
        yield ": stream lifetime reached, reconnect with Last-Event-ID\n\n"

    resp = Response(generate(since), mimetype="text/event-stream")
    resp.headers["Cache-Control"] = "no-cache"
    resp.headers["X-Accel-Buffering"] = "no"  # nginx: pass each event through at once
    return resp


def _progress_view(d: dict[str, Any]) -> dict[str, Any]:
    total, done = d.get("total_bytes"), d.get("progress_bytes")
    pct = f"{100 * done // total}%" if total and done is not None else ""
    return {
        "id": d["id"],
        "node": d["node"],
        "stage": d["stage"],
        "progress_bytes": done,
        "total_bytes": total,
        "percent": pct,
        "message": d.get("message"),
    }
