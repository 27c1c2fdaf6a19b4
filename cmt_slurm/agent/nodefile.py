"""The node's two small state files: ``/etc/cmt/node.json`` (what is installed) and the recorded request.

Standard library only and cheap to import: ``cmt-node helper`` reads node.json at every slurmd start,
once per Feature line. Paths can be moved with ``CMT_NODE_FILE`` / ``CMT_REQUEST_FILE`` (tests, or
sites keeping state elsewhere).

The request file collects what slurmd's helper calls asked for before one reboot (slurmd calls the
helper once per feature that is not active, then RebootProgram): calls merge under an exclusive lock;
a request older than ``STALE_AFTER`` belongs to an earlier, abandoned reboot and is started afresh.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

NODE_FILE = Path("/etc/cmt/node.json")
REQUEST_FILE = Path("/var/lib/cmt/request.json")
#: Seconds after which a recorded request is an earlier reboot's leftover.
STALE_AFTER = 120.0


def node_file() -> Path:
    return Path(os.environ.get("CMT_NODE_FILE") or NODE_FILE)


def request_file() -> Path:
    return Path(os.environ.get("CMT_REQUEST_FILE") or REQUEST_FILE)


def read_node(path: Path | None = None) -> dict[str, Any] | None:
    """The parsed node.json, or None when absent or unreadable (a node cmt never installed)."""
    try:
        data = json.loads((path or node_file()).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_json_atomic(path: Path, data: Any, mode: int = 0o600) -> None:
    """Write, fsync and rename, so a reader (or a crash) never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=2, sort_keys=True)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class Request:
    """What the helper calls of one reboot recorded (a plain class: dataclasses costs the helper ~5 ms)."""

    __hash__ = None  # type: ignore[assignment]  # mutable: not hashable

    def __init__(
        self,
        features: list[str] | None = None,
        *,
        since: float = 0.0,
        sent: bool = False,
        deployment: int | None = None,
        token: str | None = None,
        error: str | None = None,
    ):
        self.features = features if features is not None else []
        #: Epoch seconds of the first helper call of this request.
        self.since = since
        #: Whether the server accepted it, and its deployment (set by the helper or the reboot hook).
        self.sent = sent
        self.deployment = deployment
        #: The one-time deployment token the server returned with the deployment.
        self.token = token
        self.error = error

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Request) and self.__dict__ == other.__dict__

    def __repr__(self) -> str:
        return f"Request({self.__dict__!r})"

    @classmethod
    def from_json(cls, data: Any) -> Request:
        if not isinstance(data, dict):
            return cls()
        feats = [str(f) for f in data.get("features") or [] if f]
        dep = data.get("deployment")
        return cls(
            feats,
            since=float(data.get("since") or 0.0),
            sent=bool(data.get("sent")),
            deployment=int(dep) if isinstance(dep, int) else None,
            token=str(data["token"]) if data.get("token") else None,
            error=str(data["error"]) if data.get("error") else None,
        )


@contextmanager
def locked_request(path: Path | None = None, now: float | None = None) -> Iterator[Request]:
    """The current request, under an exclusive lock; changes to it are saved on exit."""
    path = path or request_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    now = time.time() if now is None else now
    with open(path.with_name(path.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            req = Request.from_json(json.loads(path.read_text()))
        except (OSError, ValueError):
            req = Request()
        if req.since and now - req.since > STALE_AFTER:
            req = Request()
        if not req.since:
            req.since = now
        yield req
        write_json_atomic(path, req.to_json())


def take_request(path: Path | None = None, now: float | None = None) -> Request | None:
    """Remove and return the recorded request (the reboot hook consumes it once); None if there is
    none or it is stale (an admin's ``scontrol reboot`` long after an abandoned request)."""
    path = path or request_file()
    now = time.time() if now is None else now
    if not path.exists():
        return None
    with open(path.with_name(path.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            req = Request.from_json(json.loads(path.read_text()))
        except (OSError, ValueError):
            return None
        path.unlink(missing_ok=True)
    if req.since and now - req.since > STALE_AFTER:
        return None
    return req if req.features or req.deployment else None
