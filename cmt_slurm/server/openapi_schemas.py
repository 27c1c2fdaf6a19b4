"""Component schemas of the OpenAPI document (see :mod:`.openapi`)."""

from __future__ import annotations

from typing import Any

from ..states import NodeState, Stage

_MAC = {"type": "string", "pattern": "^[0-9a-fA-F]{2}([:-][0-9a-fA-F]{2}){5}$"}
_OPT_STR = {"type": ["string", "null"]}
_OPT_INT = {"type": ["integer", "null"], "minimum": 0}


def schemas() -> dict[str, Any]:
    return {
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {
                "error": {
                    "type": "object",
                    "required": ["code", "message", "hint"],
                    "properties": {
                        "code": {"type": "string"},
                        "message": {"type": "string"},
                        "hint": _OPT_STR,
                        "details": {"type": "object"},
                    },
                }
            },
        },
        "Node": {
            "type": "object",
            "required": ["name", "state", "macs"],
            "properties": {
                "name": {"type": "string"},
                "state": {"enum": [s.value for s in NodeState]},
                "arch": {"type": "string"},
                "macs": {"type": "array", "items": {"type": "string"}},
                "current_image": _OPT_STR,
                "target_image": _OPT_STR,
                "reason": _OPT_STR,
                "last_seen": _OPT_STR,
            },
        },
        "Deployment": {
            "type": "object",
            "required": ["id", "node", "image", "stage"],
            "properties": {
                "id": {"type": "integer"},
                "node": {"type": "string"},
                "image": {"type": "string"},
                "stage": {"enum": [s.value for s in Stage]},
                "progress_bytes": _OPT_INT,
                "total_bytes": _OPT_INT,
                "message": _OPT_STR,
                "outcome": _OPT_STR,
                "token": {"type": "string", "description": "one-time token, only when just issued"},
            },
        },
        "Image": {
            "type": "object",
            "required": ["name", "os", "glibc", "arch", "format", "url", "sha256", "size"],
            "properties": {
                "name": {"type": "string"},
                "os": {"type": "string"},
                "glibc": {"type": "string"},
                "arch": {"type": "string"},
                "format": {"enum": ["qcow2", "raw"]},
                "url": {"type": "string"},
                "sha256": {"type": "string"},
                "size": {"type": "integer"},
                "default": {"type": "boolean"},
            },
        },
        "Manifest": {
            "type": "object",
            "description": "The keys of a catalogue manifest (see docs/catalogue.md)",
            "required": [
                "name",
                "os",
                "os_name",
                "os_version",
                "glibc",
                "arch",
                "format",
                "url",
                "sha256",
                "size",
            ],
        },
        "Event": {
            "type": "object",
            "required": ["id", "at", "actor", "kind"],
            "properties": {
                "id": {"type": "integer"},
                "at": {"type": "string"},
                "actor": {"type": "string"},
                "node": _OPT_STR,
                "deployment": {"type": ["integer", "null"]},
                "kind": {"type": "string"},
                "from_state": _OPT_STR,
                "to_state": _OPT_STR,
                "detail": {"type": "object"},
            },
        },
        "Registration": {
            "type": "object",
            "required": ["macs"],
            "properties": {
                "macs": {"type": "array", "items": _MAC, "minItems": 1, "maxItems": 16},
                "lldp": {"type": ["object", "null"]},
                "dmi": {"type": ["object", "null"]},
                "disks": {"type": "array", "items": {"type": "object"}, "maxItems": 64},
            },
        },
    }
