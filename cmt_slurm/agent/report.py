"""The agent's side of the API: reports, plan, registration — over ``cmt_slurm.apiclient``, with retries.

Retried: the named transient failures (connection refused/reset/timed out, HTTP 5xx). A 4xx answer is
final (a wrong token does not get better). The plan is validated here into a typed ``Plan`` so the
steps never index raw JSON.
"""

from __future__ import annotations

import base64
import binascii
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ..apiclient import ApiClient
from ..errors import BackendError, BadInput, CmtError
from .transfer import RetryPolicy, Transient, with_retries

T = TypeVar("T")
DEFAULT_POLICY = RetryPolicy()
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class PlanFile:
    """A file the identity step writes into the new root (e.g. munge key, slurmd defaults)."""

    path: str
    content: bytes
    mode: int = 0o644
    owner: str | None = None


@dataclass(frozen=True)
class Plan:
    deployment: int
    token: str = field(repr=False)
    node: str
    image: str
    url: str
    sha256: str
    size: int | None = None
    format: str = "qcow2"
    disk: str | None = None
    hostname: str | None = None
    kernel_args: str = ""
    features: tuple[str, ...] = ()
    node_token: str | None = field(default=None, repr=False)
    files: tuple[PlanFile, ...] = ()


def parse_plan(data: Mapping[str, Any], fallback_token: str | None = None) -> Plan:
    """The plan document (docs/dev/contracts.md, "Plan") into a ``Plan``.

    :raises BadInput: a required key is missing or malformed; the message names it.
    """

    def need(key: str) -> Any:
        if data.get(key) in (None, ""):
            raise BadInput(f"plan from the server lacks {key!r}", hint="server and agent versions differ?")
        return data[key]

    sha = str(need("sha256")).lower()
    if not _HEX64.match(sha):
        raise BadInput(f"plan sha256 {sha!r} is not 64 hex digits")
    token = data.get("token") or fallback_token
    if not token:
        raise BadInput("plan from the server lacks 'token'")
    files = []
    for i, item in enumerate(data.get("files") or []):
        try:
            files.append(
                PlanFile(
                    path=str(item["path"]),
                    content=base64.b64decode(item["content_base64"], validate=True),
                    mode=int(str(item.get("mode", "0644")), 8),
                    owner=item.get("owner"),
                )
            )
        except (KeyError, TypeError, ValueError, binascii.Error) as exc:
            raise BadInput(f"plan files[{i}] is malformed ({exc})") from None
        if not files[-1].path.startswith("/") or ".." in files[-1].path.split("/"):
            raise BadInput(f"plan files[{i}] path {files[-1].path!r} must be absolute, without '..'")
    size = data.get("size")
    return Plan(
        deployment=int(need("deployment")),
        token=str(token),
        node=str(need("node")),
        image=str(need("image")),
        url=str(need("url")),
        sha256=sha,
        size=int(size) if size is not None else None,
        format=str(data.get("format") or "qcow2"),
        disk=data.get("disk") or None,
        hostname=data.get("hostname") or None,
        kernel_args=str(data.get("kernel_args") or ""),
        features=tuple(str(f) for f in data.get("features") or ()),
        node_token=data.get("node_token") or None,
        files=tuple(files),
    )


def _transient(exc: CmtError) -> bool:
    status = exc.details.get("http_status")
    if isinstance(status, int):
        return status >= 500
    # No HTTP status: apiclient could not reach the server at all (refused, reset, timed out).
    return isinstance(exc, BackendError)


class AgentApi:
    """What the agent says to the server. ``deployment``/``token`` are set once the plan is known."""

    def __init__(
        self,
        server: str,
        *,
        deployment: int | None = None,
        token: str | None = None,
        policy: RetryPolicy = DEFAULT_POLICY,
        sleep: Callable[[float], None] = time.sleep,
        client: ApiClient | None = None,
        log: Callable[[str], None] = lambda _msg: None,
    ):
        self.client = client or ApiClient(server, timeout=15.0, retries=0, sleep=sleep)
        self.deployment = deployment
        self.token = token
        self.policy = policy
        self.sleep = sleep
        self.log = log

    def retrying(self, what: str, action: Callable[[], T], policy: RetryPolicy | None = None) -> T:
        def once() -> T:
            try:
                return action()
            except CmtError as exc:
                if isinstance(exc, Transient) or not _transient(exc):
                    raise
                raise Transient(f"{what}: {exc.message}") from None

        def on_retry(exc: Transient, delay: float) -> None:
            self.log(f"{exc.message}; retrying in {delay:.0f} s")

        return with_retries(once, policy or self.policy, self.sleep, on_retry)

    def report(
        self,
        stage: str,
        *,
        progress_bytes: int | None = None,
        message: str | None = None,
        policy: RetryPolicy | None = None,
    ) -> None:
        if self.deployment is None or not self.token:
            return  # discovery before registration: nothing to report against yet
        deployment, token = self.deployment, self.token
        self.retrying(
            f"report {stage}",
            lambda: self.client.report(deployment, token, stage, progress_bytes, message),
            policy,
        )

    def plan(self) -> Plan:
        if self.deployment is None:
            raise BadInput("no deployment to fetch a plan for", hint="pass cmt.deployment=ID")
        deployment = self.deployment
        data = self.retrying(
            "fetch plan",
            lambda: self.client.call(
                "GET", f"/api/v1/deployments/{deployment}", token=self.token, query={"plan": 1}
            ),
        )
        body = data.get("plan", data) if isinstance(data, dict) else {}
        return parse_plan(body, self.token)

    def register(self, payload: Mapping[str, Any]) -> tuple[str, Plan | None]:
        """(node name, plan or None when the server has nothing for this node yet)."""
        data = self.retrying("register", lambda: self.client.register(payload))
        node = data.get("node")
        name = node.get("name") if isinstance(node, dict) else node
        if not isinstance(name, str) or not name:
            raise BadInput("register answer lacks the node name", hint="server and agent versions differ?")
        plan = data.get("plan")
        return name, (parse_plan(plan) if isinstance(plan, dict) and plan else None)
