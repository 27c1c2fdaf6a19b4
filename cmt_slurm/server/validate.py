"""Request parsing for the JSON API: one place that turns a request into typed values or ``BadInput``.

Handlers never index ``request.json`` directly: a missing key, a wrong type or a string with control
characters is refused here with a message naming the field, before anything is written.
"""

from __future__ import annotations

import re
from typing import Any

from flask import request

from ..errors import BadInput

_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
#: Node and image names: what Slurm and the catalogue accept; no path separators, no dots first.
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def json_body() -> dict[str, Any]:
    """The request's JSON object.

    :raises BadInput: not JSON, not ``application/json``, or not an object.
    """
    if not request.is_json:
        raise BadInput(
            "request body must be JSON", hint="send Content-Type: application/json and a JSON object"
        )
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise BadInput("request body must be a JSON object", hint='e.g. {"image": "debian12"}')
    return data


def _clean(field: str, value: str, max_len: int) -> str:
    if len(value) > max_len:
        raise BadInput(f"{field}: longer than {max_len} characters")
    if any(not c.isprintable() for c in value):
        raise BadInput(f"{field}: contains control characters", hint="send plain printable text")
    return value


def req_str(
    data: dict[str, Any], field: str, *, max_len: int = 255, pattern: re.Pattern[str] | None = None
) -> str:
    value = data.get(field)
    if not isinstance(value, str) or not value:
        raise BadInput(f"{field}: required, a non-empty string", hint=f'send "{field}": "..."')
    value = _clean(field, value, max_len)
    if pattern is not None and not pattern.match(value):
        raise BadInput(f"{field}: {value!r} is not valid", hint=f"it must match {pattern.pattern}")
    return value


def opt_str(data: dict[str, Any], field: str, *, max_len: int = 4096) -> str | None:
    value = data.get(field)
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadInput(f"{field}: must be a string or null")
    return _clean(field, value, max_len)


def opt_int(data: dict[str, Any], field: str, *, minimum: int = 0, maximum: int = 1 << 62) -> int | None:
    value = data.get(field)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadInput(f"{field}: must be an integer or null")
    if not minimum <= value <= maximum:
        raise BadInput(f"{field}: {value} is outside {minimum}..{maximum}")
    return value


def str_list(data: dict[str, Any], field: str, *, max_items: int = 64, max_len: int = 255) -> list[str]:
    value = data.get(field)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise BadInput(f"{field}: required, a list of strings", hint=f'send "{field}": ["..."]')
    if len(value) > max_items:
        raise BadInput(f"{field}: more than {max_items} items")
    return [_clean(field, v, max_len) for v in value]


def mac(raw: str | None, field: str = "mac") -> str:
    """``52-54-00-AB-CD-EF`` or ``52:54:00:ab:cd:ef`` → ``52:54:00:ab:cd:ef``."""
    value = (raw or "").strip().lower().replace("-", ":")
    if not _MAC.match(value):
        shown = (raw or "")[:40]
        raise BadInput(
            f"{field}: {shown!r} is not a MAC address",
            hint="six hex pairs, e.g. 52:54:00:12:34:56",
            details={"field": field},
        )
    return value


def name(raw: str, what: str) -> str:
    if not NAME.match(raw):
        raise BadInput(f"{what} name {raw[:80]!r} is not valid", hint=f"it must match {NAME.pattern}")
    return raw


def query_int(field: str, *, minimum: int = 0, maximum: int = 1 << 62) -> int | None:
    raw = request.args.get(field)
    if raw is None or raw == "":
        return None
    if not raw.isdigit():
        raise BadInput(f"{field}: {raw[:40]!r} is not a non-negative integer")
    value = int(raw)
    if not minimum <= value <= maximum:
        raise BadInput(f"{field}: {value} is outside {minimum}..{maximum}")
    return value
