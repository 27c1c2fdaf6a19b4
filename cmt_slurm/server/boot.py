"""``/boot``: the per-node iPXE script and the live reimager's kernel and initrd.

``GET /boot/ipxe?mac=${net0/mac}&uuid=${uuid}&serial=${serial}&arch=${buildarch}`` answers the script
for the node's boot mode (``provisioner.boot_decision``), rendered completely before the response starts.
A malformed or missing MAC, or a server failure, is answered 200 with a fixed script that prints the
problem and retries (``errors.boot_error_script``; header ``X-Cmt-Error`` names it for tools): iPXE
shows HTTP errors only as a bare error number, and a node left at an iPXE prompt helps nobody.

``GET /boot/live/{vmlinuz,initrd.img}``: the two files of ``settings.effective_live_dir``, by fixed name.
"""

from __future__ import annotations

from flask import Blueprint, Response, request

from ..errors import NotFound
from ..ipxe import render_ipxe
from .boot_context import boot_context
from .images_http import serve_file
from .state import server_state
from .validate import mac

bp = Blueprint("boot", __name__, url_prefix="/boot")

#: The only files under /boot/live/; the URL names a key here, never a path.
LIVE_FILES = {"vmlinuz": "vmlinuz", "initrd.img": "initrd.img"}


@bp.get("/ipxe")
def ipxe_script() -> Response:
    state = server_state()
    node_mac = mac(request.args.get("mac"))
    decision = state.provisioner.boot_decision(node_mac)
    script = render_ipxe(boot_context(state, decision), state.settings.template_dir)
    state.metrics.boot_requests.labels(mode=str(decision.mode)).inc()
    resp = Response(script, mimetype="text/plain")
    resp.headers["Cache-Control"] = "no-store"  # one-time tokens inside
    resp.headers["X-Cmt-Boot-Mode"] = str(decision.mode)
    return resp


@bp.route("/live/<file>", methods=["GET", "HEAD"])
def live_file(file: str) -> Response:
    state = server_state()
    name = LIVE_FILES.get(file)
    if name is None:
        raise NotFound(
            f"/boot/live/{file[:40]}: no such file", hint="the live env has vmlinuz and initrd.img"
        )
    resp, sent = serve_file(
        state.settings.effective_live_dir / name,
        missing_hint="build the live env (images/live) and copy vmlinuz and initrd.img into live_dir",
    )
    if sent:
        state.metrics.bytes_served.labels(kind="live").inc(sent)
    return resp
