"""Site files: what every new root gets besides the image (munge key, slurmd's controller address, hooks).

The setting ``site_files`` names a JSON file holding a list in the plan's ``files`` format
(docs/dev/contracts.md, Plan): ``[{"path": "/etc/munge/munge.key", "content_base64": "...", "mode": "0400",
"owner": "munge:munge"}]``. It is read at every plan, so a site can rotate a key without restarting the
server; a broken file fails the plan with a message naming it rather than installing half a node.
"""

from __future__ import annotations

import base64
import binascii
import json
from pathlib import Path, PurePosixPath
from typing import Any

from ..errors import ConfigError

SiteFile = dict[str, str | None]


def parse_site_files(data: Any, where: str) -> tuple[SiteFile, ...]:
    """Validate the list; returns it in the plan's shape. :raises ConfigError: naming the bad entry."""
    if not isinstance(data, list):
        raise ConfigError(f"{where}: must hold a JSON list of files", hint='e.g. [{"path": ..., ...}]')
    out: list[SiteFile] = []
    for i, item in enumerate(data):
        at = f"{where}: [{i}]"
        if not isinstance(item, dict):
            raise ConfigError(f"{at}: must be an object with path and content_base64")
        path = item.get("path")
        if not isinstance(path, str) or not PurePosixPath(path).is_absolute() or ".." in path.split("/"):
            raise ConfigError(f"{at}: path {path!r} must be absolute, without '..'")
        content = item.get("content_base64")
        try:
            base64.b64decode(str(content), validate=True)
        except (binascii.Error, ValueError):
            raise ConfigError(f"{at}: content_base64 is not base64", hint=f"fix {path} in {where}") from None
        mode = str(item.get("mode") or "0644")
        try:
            if not 0 <= int(mode, 8) <= 0o7777:
                raise ValueError
        except ValueError:
            raise ConfigError(f"{at}: mode {mode!r} is not an octal file mode", hint='e.g. "0644"') from None
        owner = item.get("owner")
        if owner is not None and not isinstance(owner, str):
            raise ConfigError(f"{at}: owner must be a string like 'munge' or 'munge:munge'")
        out.append({"path": path, "content_base64": str(content), "mode": mode, "owner": owner})
    return tuple(out)


def load_site_files(path: Path | None) -> tuple[SiteFile, ...]:
    """The files of the ``site_files`` setting; none when it is unset. :raises ConfigError:"""
    if path is None:
        return ()
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(
            f"site_files: {path} does not exist", hint="create it or unset site_files"
        ) from None
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"site_files: {path} is unreadable ({exc})", hint="write it as a JSON list"
        ) from None
    return parse_site_files(data, str(path))
