"""The OpenAPI 3.1 document served at ``/api/v1/openapi.json``.

Written out by hand (it is the contract), kept true by tests: one compares its paths and methods with
Flask's URL map, schemathesis sends generated requests from it to a real server and checks the answers
against it. Paths are absolute (server ``/``) so the boot, image and metrics routes are covered too.
"""

from __future__ import annotations

from typing import Any

from .. import __version__
from ..states import Stage
from .openapi_schemas import schemas

_NAME = {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"}
_MAC = {"type": "string", "pattern": "^[0-9a-fA-F]{2}([:-][0-9a-fA-F]{2}){5}$"}
_OPT_STR = {"type": ["string", "null"]}
_OPT_INT = {"type": ["integer", "null"], "minimum": 0}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _err(description: str) -> dict[str, Any]:
    return _json(_ref("Error"), description)


def _body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _path_param(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": schema}


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


def _op(
    summary: str,
    responses: dict[str, Any],
    *,
    tag: str,
    params: list[dict[str, Any]] | None = None,
    body: dict[str, Any] | None = None,
    auth: str | None = None,
) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "tags": [tag], "responses": responses}
    if params:
        op["parameters"] = params
    if body is not None:
        op["requestBody"] = _body(body)
        responses.setdefault("400", _err("Malformed body or field"))
        responses.setdefault("413", _err("Body larger than 1 MiB"))
    if auth is not None:
        op["security"] = [{auth: []}]
        responses.setdefault("401", _err("Missing or wrong token"))
        responses.setdefault("403", _err("Token valid, but not for this"))
    return op


_NODE_PARAM = _path_param("name", _NAME)
_IMAGE_PARAM = _path_param("name", _NAME)
_DEP_PARAM = _path_param("id", {"type": "integer", "minimum": 0, "maximum": 2**63 - 1})
_404 = {"404": _err("No such node, deployment or image")}


def _deployment_or_null() -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["deployment"],
        "properties": {"deployment": {"oneOf": [_ref("Deployment"), {"type": "null"}]}},
    }


def _api_paths() -> dict[str, Any]:
    node_list = {"type": "object", "properties": {"nodes": {"type": "array", "items": _ref("Node")}}}
    return {
        "/api/v1/openapi.json": {"get": _op("This document", {"200": _json({"type": "object"})}, tag="meta")},
        "/api/v1/nodes": {"get": _op("All nodes", {"200": _json(node_list)}, tag="nodes")},
        "/api/v1/nodes/{name}": {
            "get": _op("One node", {"200": _json(_ref("Node")), **_404}, tag="nodes", params=[_NODE_PARAM])
        },
        "/api/v1/nodes/register": {
            "post": _op(
                "Register a node from the live env: its name and plan",
                {"200": _json({"type": "object"}), "409": _err("MAC or name claimed by another node")},
                tag="nodes",
                body=_ref("Registration"),
            )
        },
        "/api/v1/nodes/{name}/request": {
            "post": _op(
                "Request features (Slurm helper): selects an image, creates a deployment if needed",
                {"200": _json(_deployment_or_null()), **_404, "409": _err("Busy"), "422": _err("No image")},
                tag="nodes",
                params=[_NODE_PARAM],
                body={
                    "type": "object",
                    "required": ["features"],
                    "properties": {"features": {"type": "array", "items": {"type": "string"}}},
                },
                auth="nodeToken",
            )
        },
        "/api/v1/nodes/{name}/target": {
            "put": _op(
                "Set the node's target image (admin)",
                {"200": _json(_deployment_or_null()), **_404, "409": _err("Illegal now")},
                tag="nodes",
                params=[_NODE_PARAM],
                body={"type": "object", "required": ["image"], "properties": {"image": _NAME}},
                auth="adminToken",
            )
        },
        "/api/v1/nodes/{name}/drain-cleared": {
            "post": _op(
                "Clear a failed node (admin)",
                {"200": _json(_ref("Node")), **_404, "409": _err("Not failed")},
                tag="nodes",
                params=[_NODE_PARAM],
                auth="adminToken",
            )
        },
        "/api/v1/nodes/{name}/ready": {
            "post": _op(
                "The booted OS reports in (node token)",
                {"200": _json(_ref("Node")), **_404, "409": _err("Unexpected image")},
                tag="nodes",
                params=[_NODE_PARAM],
                body={
                    "type": "object",
                    "required": ["image"],
                    "properties": {"image": _NAME, "boot_time": _OPT_INT},
                },
                auth="nodeToken",
            )
        },
        "/api/v1/deployments/{id}": {
            "get": _op(
                "One deployment",
                {"200": _json(_ref("Deployment")), **_404},
                tag="deployments",
                params=[_DEP_PARAM],
            )
        },
        "/api/v1/deployments/{id}/report": {
            "post": _op(
                "Progress report from the reimager (deployment token)",
                {"200": _json(_ref("Deployment")), **_404, "409": _err("Out-of-order stage")},
                tag="deployments",
                params=[_DEP_PARAM],
                body={
                    "type": "object",
                    "required": ["stage"],
                    "properties": {
                        "stage": {"enum": [s.value for s in Stage]},
                        "progress_bytes": _OPT_INT,
                        "message": _OPT_STR,
                    },
                },
                auth="deploymentToken",
            )
        },
        "/api/v1/images": {
            "get": _op(
                "The catalogue",
                {
                    "200": _json(
                        {
                            "type": "object",
                            "properties": {"images": {"type": "array", "items": _ref("Image")}},
                        }
                    )
                },
                tag="images",
            ),
            "post": _op(
                "Add an image manifest (admin)",
                {"201": _json(_ref("Image")), "409": _err("Name taken"), "422": _err("Invalid manifest")},
                tag="images",
                body=_ref("Manifest"),
                auth="adminToken",
            ),
        },
        "/api/v1/images/{name}": {
            "get": _op(
                "One image", {"200": _json(_ref("Image")), **_404}, tag="images", params=[_IMAGE_PARAM]
            ),
            "delete": _op(
                "Remove an image (admin)",
                {"204": {"description": "Removed"}, **_404, "409": _err("In use")},
                tag="images",
                params=[_IMAGE_PARAM],
                auth="adminToken",
            ),
        },
        "/api/v1/images/sync": {
            "post": _op(
                "Re-read the manifest directory (admin)",
                {"200": _json({"type": "object"})},
                tag="images",
                auth="adminToken",
            )
        },
        "/api/v1/events": {
            "get": _op(
                "Audit events, oldest first",
                {
                    "200": _json(
                        {
                            "type": "object",
                            "properties": {"events": {"type": "array", "items": _ref("Event")}},
                        }
                    )
                },
                tag="events",
                params=[
                    _query("node", _NAME, "only this node"),
                    _query("since", {"type": "integer", "minimum": 0}, "only events after this id"),
                    _query("limit", {"type": "integer", "minimum": 1, "maximum": 1000}, "at most this many"),
                ],
            )
        },
        "/api/v1/events/stream": {
            "get": _op(
                "Server-sent events: new audit rows and deployment progress (Last-Event-ID resumes)",
                {
                    "200": {
                        "description": "text/event-stream",
                        "content": {"text/event-stream": {"schema": {"type": "string"}}},
                    }
                },
                tag="events",
                params=[
                    _query("node", _NAME, "only this node"),
                    _query("since", {"type": "integer", "minimum": 0}, "start after this id"),
                    _query("timeout", {"type": "integer", "minimum": 1, "maximum": 300}, "end sooner (s)"),
                    _query("progress", {"enum": ["0", "1"]}, "0: no progress messages"),
                ],
            )
        },
    }


def _text(description: str, media: str = "text/plain") -> dict[str, Any]:
    return {"description": description, "content": {media: {"schema": {"type": "string"}}}}


def _bytes_op(summary: str, param: dict[str, Any] | None, tag: str) -> dict[str, Any]:
    responses = {
        "200": _text("The whole file", "application/octet-stream"),
        "206": _text("The requested range", "application/octet-stream"),
        "302": {"description": "external mode: the manifest URL"},
        "304": {"description": "Not modified (If-None-Match)"},
        "404": _err("Not in the catalogue / not present"),
        "416": {"description": "Range not satisfiable"},
    }
    return _op(summary, responses, tag=tag, params=[param] if param else None)


def _other_paths() -> dict[str, Any]:
    live = _path_param("file", {"enum": ["vmlinuz", "initrd.img"]})
    image_get = _bytes_op("An image's bytes (Range, ETag, sendfile)", _IMAGE_PARAM, "bytes")
    live_get = _bytes_op("The live reimager's kernel or initrd", live, "boot")
    return {
        "/boot/ipxe": {
            "get": _op(
                "The iPXE script for the node with this MAC (errors are scripts too)",
                {"200": _text("#!ipxe script")},
                tag="boot",
                params=[
                    _query("mac", _MAC, "${net0/mac}"),
                    _query("uuid", {"type": "string"}, "${uuid}"),
                    _query("serial", {"type": "string"}, "${serial}"),
                    _query("arch", {"type": "string"}, "${buildarch}"),
                ],
            )
        },
        "/boot/live/{file}": {"get": live_get, "head": {**live_get, "operationId": "headLive"}},
        "/images/{name}": {"get": image_get, "head": {**image_get, "operationId": "headImage"}},
        "/": {"get": _op("Dashboard", {"200": _text("HTML", "text/html")}, tag="ui")},
        "/ui/panels": {
            "get": _op("Dashboard panels (HTML fragment)", {"200": _text("HTML", "text/html")}, tag="ui")
        },
        "/metrics": {"get": _op("Prometheus metrics", {"200": _text("exposition format")}, tag="meta")},
    }


def openapi_document() -> dict[str, Any]:
    bearer = {"type": "http", "scheme": "bearer"}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "cmt-slurm boot server",
            "version": __version__,
            "description": 'Errors are JSON: {"error": {"code", "message", "hint"}}.',
        },
        "servers": [{"url": "/"}],
        "paths": {**_api_paths(), **_other_paths()},
        "components": {
            "schemas": schemas(),
            "securitySchemes": {
                "adminToken": {**bearer, "description": "`cmt token create NAME`"},
                "nodeToken": {**bearer, "description": "token in the node's /etc/cmt/node.json"},
                "deploymentToken": {**bearer, "description": "one-time token (cmt.token= on the live env)"},
            },
        },
    }
