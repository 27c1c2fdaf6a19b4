"""``/api/v1/deployments``: a deployment's state, its plan (deployment token), the reimager's reports."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Blueprint, Response, jsonify, request

from ..errors import BadInput, Unauthorized
from ..states import Stage
from .auth import bearer_token, remote_addr
from .state import server_state
from .validate import json_body, opt_int, opt_str, req_str

bp = Blueprint("deployments", __name__, url_prefix="/deployments")

_STAGES = tuple(s.value for s in Stage)


@bp.get("/<int(max=9223372036854775807):deployment_id>")
def get_deployment(deployment_id: int) -> Response:
    """The deployment; with ``?plan=1`` and its token as bearer, ``{"plan": ...}`` for the reimager."""
    prov = server_state().provisioner
    if request.args.get("plan") in ("1", "true", "yes"):
        token = bearer_token()
        if token is None:
            raise Unauthorized(
                f"deployment {deployment_id}: the plan needs the deployment token",
                hint="send the one-time token from the kernel command line (cmt.token=) as a bearer token",
            )
        return jsonify({"plan": prov.plan(deployment_id, token, remote=remote_addr()).as_dict()})
    return jsonify(prov.get_deployment(deployment_id).as_dict())


@bp.post("/<int(max=9223372036854775807):deployment_id>/report")
def report(deployment_id: int) -> Response:
    data = json_body()
    stage = req_str(data, "stage", max_len=32)
    if stage not in _STAGES:
        raise BadInput(f"stage: {stage!r} is not a deployment stage", hint=f"one of: {', '.join(_STAGES)}")
    progress = opt_int(data, "progress_bytes")
    message = opt_str(data, "message", max_len=2000)
    token = bearer_token()
    state = server_state()
    started = datetime.now(UTC)
    dep = state.provisioner.report(
        deployment_id, token or "", Stage(stage), progress, message, remote=remote_addr()
    )
    m = state.metrics
    m.reports.labels(stage=stage).inc()
    if dep.stage_started >= started and dep.stage_seconds:
        # This report moved the deployment on. Stages are never revisited, so the stage it left is the
        # newest key of stage_seconds (no extra read per report: the boot storm sends thousands).
        left = next(reversed(dep.stage_seconds))
        m.stage_seconds.labels(stage=left).observe(dep.stage_seconds[left])
        if dep.outcome:
            m.finished.labels(outcome=dep.outcome).inc()
    return jsonify(dep.as_dict())
