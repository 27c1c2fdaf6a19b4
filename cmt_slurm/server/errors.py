"""The server's one error boundary.

Every failure a request can meet ends here and nowhere else:

* a ``CmtError`` becomes ``{"error": {"code", "message", "hint"}}`` with the class's HTTP status;
* a werkzeug ``HTTPException`` (unknown route, wrong method, oversize body, malformed JSON) becomes the
  same shape with a code derived from the status;
* anything else is a bug: logged with its traceback, answered 500 with a generic message (internals,
  SQL and paths never reach the client).

``/boot/ipxe`` is the exception to JSON: iPXE shows HTTP errors as a bare error number, so a failing boot
request is answered 200 with a tiny fixed-text script that prints what went wrong and retries (see
:func:`boot_error_script`). Nothing from the request is echoed into that script.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from ..errors import BadInput, Busy, CmtError
from .state import server_state

log = logging.getLogger("cmt_slurm.server")

#: werkzeug status -> our error code; statuses not listed get ``http_<status>``.
_HTTP_CODES: dict[int, str] = {
    400: "bad_input",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    411: "length_required",
    412: "precondition_failed",
    413: "too_large",
    415: "unsupported_media_type",
    416: "range_not_satisfiable",
    422: "no_match",
    431: "headers_too_large",
    503: "busy",
}

_HTTP_HINTS: dict[int, str] = {
    404: "see /api/v1/openapi.json for the routes",
    405: "see /api/v1/openapi.json for the methods each route accepts",
    413: "request bodies are limited to 1 MiB",
    415: "send the body as JSON with Content-Type: application/json",
}

#: Seconds an iPXE client waits before asking again after a failed boot request.
BOOT_RETRY_SECONDS = 10


def error_body(code: str, message: str, hint: str | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "hint": hint}}


def boot_error_script(message: str, retry_url: str, retry_s: int = BOOT_RETRY_SECONDS) -> str:
    """A fixed iPXE script that prints ``message`` and chains ``retry_url`` again after ``retry_s``.

    ``message`` must be a constant chosen by the server (never request data) and ``retry_url`` comes from
    the settings; the characters iPXE would interpret are dropped from the message anyway as a second
    line of defence.
    """
    safe = "".join(c for c in message if c.isprintable() and c not in "${}\\\"'#;&|<>")
    return (
        "#!ipxe\n"
        f"echo cmt: {safe}\n"
        f"echo cmt: retrying in {int(retry_s)} seconds\n"
        f"sleep {int(retry_s)}\n"
        f"chain --replace --autofree {retry_url} || reboot\n"
    )


def _is_boot_script_request() -> bool:
    return request.endpoint == "boot.ipxe_script"


def _boot_response(message: str, status: str) -> Response:
    retry_url = server_state().boot_script_url
    resp = Response(boot_error_script(message, retry_url), status=200, mimetype="text/plain")
    resp.headers["X-Cmt-Error"] = status
    resp.headers["Cache-Control"] = "no-store"
    return resp


def _json(status: int, body: dict[str, Any]) -> Response:
    resp = jsonify(body)
    resp.status_code = status
    return resp


def handle_cmt_error(exc: CmtError) -> Response:
    if _is_boot_script_request():
        if isinstance(exc, BadInput) and exc.details.get("field") == "mac":
            return _boot_response("bad boot request: the mac= parameter must be a MAC address", exc.code)
        # A value that cannot go into a script, a broken operator template, the database: the node
        # cannot fix any of it, the operator must see it.
        log.error("boot script for %s failed: %s (%s)", request.args.get("mac", "?")[:40], exc, exc.hint)
        return _boot_response("the boot server cannot build this script now (see its log)", exc.code)
    resp = _json(exc.http_status, exc.to_json())
    if isinstance(exc, Busy):
        resp.headers["Retry-After"] = str(exc.details.get("retry_after", 5))
    return resp


def handle_http_exception(exc: HTTPException) -> Response:
    status = exc.code or 500
    code = _HTTP_CODES.get(status, f"http_{status}")
    if _is_boot_script_request():
        return _boot_response("bad boot request", code)
    message = exc.description or exc.name
    resp = _json(status, error_body(code, message, _HTTP_HINTS.get(status)))
    # Keep the Allow header of 405s and the like; drop werkzeug's HTML content headers.
    for key, value in exc.get_headers():
        if key.lower() not in ("content-type", "content-length"):
            resp.headers[key] = value
    return resp


def handle_unexpected(exc: Exception) -> Response:
    if isinstance(exc, HTTPException):  # raised as a plain exception by some middleware paths
        return handle_http_exception(exc)
    log.exception("unhandled error in %s %s", request.method, request.path)
    if _is_boot_script_request():
        return _boot_response("the boot server failed (see its log)", "internal")
    return _json(
        500,
        error_body(
            "internal",
            "internal server error",
            "the server logged a traceback; report it with the time of the request",
        ),
    )


def init_app(app: Flask) -> None:
    app.register_error_handler(CmtError, handle_cmt_error)
    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(Exception, handle_unexpected)
