"""``/api/v1/nodes``: list and show nodes, registration from the live env, feature requests from the
Slurm helper (node token), targets and failure clearing by admins, the booted OS reporting in."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Response, jsonify

from ..agent.lldp import LldpInfo, parse_lldp
from ..errors import BadInput
from ..provisioner import Registration
from .auth import bearer_token, remote_addr, require_admin, require_node
from .state import server_state
from .validate import json_body, mac, name, opt_int, opt_str, req_str, str_list

bp = Blueprint("nodes", __name__, url_prefix="/nodes")

_ARCH = ("x86_64", "aarch64")
#: An LLDP frame is at most a jumbo Ethernet frame.
MAX_FRAME_HEX = 2 * 9216


@bp.get("")
def list_nodes() -> Response:
    nodes = server_state().provisioner.list_nodes()
    return jsonify({"nodes": [n.as_dict() for n in nodes]})


@bp.get("/<node_name>")
def get_node(node_name: str) -> Response:
    prov = server_state().provisioner
    node = prov.get_node(name(node_name, "node"))
    data = node.as_dict()
    data["deployments"] = [d.as_dict() for d in prov.node_deployments(node.name, limit=5)]
    return jsonify(data)


def _lldp(data: dict[str, Any]) -> LldpInfo | None:
    frame = opt_str(data, "lldp_frame", max_len=MAX_FRAME_HEX)
    if frame:
        try:
            raw = bytes.fromhex(frame)
        except ValueError:
            raise BadInput("lldp_frame: not hex", hint="send the captured frame as hex digits") from None
        return parse_lldp(raw)
    value = data.get("lldp")
    if value is None:
        return None
    if not isinstance(value, dict):
        raise BadInput("lldp: must be an object or null")
    try:
        return LldpInfo.from_dict(value, "lldp")
    except (TypeError, ValueError, KeyError) as exc:
        raise BadInput(f"lldp: {exc}", hint="send the fields of the agent's LldpInfo") from None


def _registration_json(reg: Registration) -> dict[str, Any]:
    return {
        "node": reg.node.as_dict(),
        "plan": None if reg.plan is None else reg.plan.as_dict(),
        "created": reg.created,
    }


@bp.post("/register")
def register() -> Response:
    data = json_body()
    macs = [mac(m, "macs[]") for m in str_list(data, "macs", max_items=16, max_len=32)]
    if not macs:
        raise BadInput("macs: at least one MAC address is required", hint='send "macs": ["52:54:00:..."]')
    boot_mac = opt_str(data, "boot_mac", max_len=32)
    if boot_mac is not None and mac(boot_mac, "boot_mac") not in macs:
        macs.append(mac(boot_mac, "boot_mac"))
    dmi = data.get("dmi")
    if dmi is not None and not isinstance(dmi, dict):
        raise BadInput("dmi: must be an object or null")
    disks = data.get("disks") or []
    if not isinstance(disks, list) or not all(isinstance(d, dict) for d in disks) or len(disks) > 64:
        raise BadInput("disks: must be a list of at most 64 objects")
    arch = opt_str(data, "arch", max_len=16)
    if arch is not None and arch not in _ARCH:
        raise BadInput(f"arch: {arch!r} is not one of {', '.join(_ARCH)}")
    reg = server_state().provisioner.register_node(
        macs, _lldp(data), dmi, disks, arch=arch, remote=remote_addr()
    )
    return jsonify(_registration_json(reg))


@bp.post("/<node_name>/request")
def request_features(node_name: str) -> Response:
    node_name = name(node_name, "node")
    features = str_list(json_body(), "features", max_items=32, max_len=128)
    actor = require_node(node_name)
    dep = server_state().provisioner.request_features(node_name, features, actor)
    return jsonify({"deployment": None if dep is None else dep.as_dict()})


@bp.put("/<node_name>/target")
def set_target(node_name: str) -> Response:
    node_name = name(node_name, "node")
    image = req_str(json_body(), "image", max_len=128)
    actor = require_admin()
    dep = server_state().provisioner.set_target(node_name, image, actor)
    return jsonify({"deployment": dep.as_dict()})


@bp.post("/<node_name>/drain-cleared")
def drain_cleared(node_name: str) -> Response:
    node_name = name(node_name, "node")
    actor = require_admin()
    node = server_state().provisioner.clear_failed(node_name, actor)
    return jsonify(node.as_dict())


@bp.post("/<node_name>/ready")
def ready(node_name: str) -> Response:
    node_name = name(node_name, "node")
    data = json_body()
    image = req_str(data, "image", max_len=128)
    epoch = opt_int(data, "boot_time", maximum=1 << 35)
    boot_time = None if epoch is None else datetime.fromtimestamp(epoch, UTC)
    node = server_state().provisioner.node_ready(node_name, image, boot_time, bearer_token())
    return jsonify(node.as_dict())
