"""Catalogue manifests for built images (keys as in docs/dev/contracts.md and the catalogue's loader)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import date

ManifestValue = str | int | bool | date | list[str]

#: Key order in generated files: what an admin reads first.
KEY_ORDER = (
    "name", "os", "os_name", "os_version", "glibc", "arch", "format", "url", "sha256", "size", "built",
    "kernel_args", "default", "features",
)  # fmt: skip


def _toml_value(value: ManifestValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(json.dumps(v) for v in value) + "]"
    # JSON string escapes are valid TOML basic-string escapes for the characters that occur here.
    return json.dumps(value, ensure_ascii=False)


def render_manifest(fields: Mapping[str, ManifestValue], comment: str = "") -> str:
    """TOML text of a manifest, keys in KEY_ORDER then any others sorted; a leading ``#`` comment block."""
    head = "".join(f"# {line}\n".replace("# \n", "#\n") for line in comment.splitlines())
    keys = [k for k in KEY_ORDER if k in fields] + sorted(k for k in fields if k not in KEY_ORDER)
    return head + "".join(f"{k} = {_toml_value(fields[k])}\n" for k in keys)
