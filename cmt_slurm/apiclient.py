"""HTTP client for the boot server's API, standard library only.

Used where Flask and SQLAlchemy must not be imported: ``cmt-node`` hooks (run by slurmd with a 10 s
budget), the live reimager, and the ``cmt`` CLI's Slurm hooks. Every call has a bounded timeout. Error
answers (``{"error": {"code", "message", "hint"}}``) come back as the matching :class:`CmtError`
subclass, so callers handle a remote ``Conflict`` exactly like a local one. Retries are opt-in and only
for failures that a retry can fix: the connection (refused, reset, timed out) and ``503 Busy``.
"""

from __future__ import annotations

import http.client
import json
import random
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from . import __version__
from .errors import (
    BackendError,
    BadInput,
    Busy,
    CmtError,
    Conflict,
    Forbidden,
    NoMatch,
    NotFound,
    PayloadTooLarge,
    Unauthorized,
)

#: Bytes of an answer we are willing to read (the largest legitimate one is a long node or event list).
MAX_RESPONSE = 16 << 20

#: Failures of the connection itself (refused, reset, timed out, cut mid-answer): worth a retry.
_TRANSIENT = (urllib.error.URLError, ConnectionError, TimeoutError, http.client.HTTPException)


def _error_classes() -> dict[str, type[CmtError]]:
    found: dict[str, type[CmtError]] = {}
    todo: list[type[CmtError]] = [CmtError]
    while todo:
        cls = todo.pop()
        found.setdefault(cls.code, cls)
        todo.extend(cls.__subclasses__())
    return found


def _by_status(status: int) -> type[CmtError]:
    # For error codes this client does not know (a newer server): the most general class per status.
    general = (BadInput, Unauthorized, Forbidden, NotFound, Conflict, PayloadTooLarge, NoMatch, Busy)
    return next((cls for cls in general if cls.http_status == status), BackendError)


def error_from_response(status: int, body: bytes, url: str) -> CmtError:
    """The ``CmtError`` an error answer stands for; a non-JSON answer becomes a ``BackendError``."""
    try:
        data = json.loads(body)
        err = data["error"]
        code, message = str(err["code"]), str(err["message"])
        hint = err.get("hint")
        details = err.get("details") if isinstance(err.get("details"), dict) else None
    except (ValueError, KeyError, TypeError):
        snippet = body[:200].decode("utf-8", "replace").strip()
        return BackendError(
            f"{url}: HTTP {status} without an error document: {snippet!r}",
            hint="is server_url pointing at `cmt server` (and not at a proxy error page)?",
        )
    cls = _error_classes().get(code) or _by_status(status)
    exc = cls(message, hint=str(hint) if hint else None, details=details)
    exc.details.setdefault("http_status", status)
    return exc


@dataclass
class ApiClient:
    """A small client bound to one server URL and (optionally) one bearer token."""

    base_url: str
    token: str | None = field(default=None, repr=False)
    timeout: float = 10.0
    #: Extra attempts after a connection error or a 503; 0 means fail at the first error.
    retries: int = 0
    backoff: float = 0.5
    max_backoff: float = 8.0
    sleep: Callable[[float], None] = time.sleep
    user_agent: str = f"cmt-slurm/{__version__}"

    def __post_init__(self) -> None:
        self.base_url = self.base_url.rstrip("/")
        if not self.base_url.startswith(("http://", "https://")):
            raise BadInput(f"server URL {self.base_url!r} is not http(s)", hint="e.g. http://10.0.0.1:8080")

    # -- transport ------------------------------------------------------------------------------------
    def url(self, path: str, query: Mapping[str, Any] | None = None) -> str:
        url = self.base_url + path
        if query:
            clean = {k: str(v) for k, v in query.items() if v is not None}
            if clean:
                url += "?" + urllib.parse.urlencode(clean)
        return url

    def _request(
        self, method: str, path: str, body: Any, token: str | None, query: Mapping[str, Any] | None
    ) -> urllib.request.Request:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url(path, query), data=data, method=method)  # noqa: S310
        req.add_header("Accept", "application/json")
        req.add_header("User-Agent", self.user_agent)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        bearer = token if token is not None else self.token
        if bearer:
            req.add_header("Authorization", f"Bearer {bearer}")
        return req

    def _delay(self, attempt: int, retry_after: str | None) -> float:
        delay: float = min(self.max_backoff, self.backoff * 2.0**attempt)
        if retry_after and retry_after.isdigit():
            delay = min(self.max_backoff, float(retry_after))
        return delay * (0.75 + 0.5 * random.random())  # noqa: S311 - jitter, not crypto

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        token: str | None = None,
        query: Mapping[str, Any] | None = None,
        retries: int | None = None,
    ) -> Any:
        """Send one request and decode the JSON answer.

        :raises CmtError: the server's error, mapped to its class; ``BackendError`` when the server
            cannot be reached (after the allowed retries) or answers something that is not JSON.
        """
        attempts = 1 + (self.retries if retries is None else retries)
        url = self.url(path, query)
        last: CmtError | None = None
        for attempt in range(attempts):
            req = self._request(method, path, body, token, query)
            retry_after: str | None = None
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:  # noqa: S310 - http(s) only
                    raw = resp.read(MAX_RESPONSE + 1)
                if len(raw) > MAX_RESPONSE:
                    raise BackendError(f"{url}: answer larger than {MAX_RESPONSE} bytes")
                return json.loads(raw) if raw else None
            except urllib.error.HTTPError as exc:
                err = error_from_response(exc.code, exc.read(MAX_RESPONSE), url)
                exc.close()
                if not isinstance(err, Busy):
                    raise err from None
                last, retry_after = err, exc.headers.get("Retry-After")
            except _TRANSIENT as exc:
                reason = getattr(exc, "reason", exc)
                last = BackendError(
                    f"cannot reach the boot server at {self.base_url}: {reason}",
                    hint="is `cmt server` running, and is server_url (or cmt.server=) right?",
                )
            except ValueError as exc:
                raise BackendError(f"{url}: answer is not JSON: {exc}") from None
            if attempt + 1 < attempts:
                self.sleep(self._delay(attempt, retry_after))
        assert last is not None
        raise last

    def get(self, path: str, **query: Any) -> Any:
        return self.call("GET", path, query=query)

    # -- endpoints --------------------------------------------------------------------------------------
    def nodes(self) -> list[dict[str, Any]]:
        return list(self.get("/api/v1/nodes")["nodes"])

    def node(self, name: str) -> dict[str, Any]:
        return dict(self.get(f"/api/v1/nodes/{_seg(name)}"))

    def register(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        """From the live env: MACs, LLDP, DMI and disks in; the node's name and plan out."""
        return dict(self.call("POST", "/api/v1/nodes/register", dict(payload)))

    def request_features(self, name: str, features: list[str], node_token: str) -> dict[str, Any]:
        path = f"/api/v1/nodes/{_seg(name)}/request"
        return dict(self.call("POST", path, {"features": features}, token=node_token))

    def set_target(self, name: str, image: str) -> dict[str, Any]:
        return dict(self.call("PUT", f"/api/v1/nodes/{_seg(name)}/target", {"image": image}))

    def drain_cleared(self, name: str) -> dict[str, Any]:
        return dict(self.call("POST", f"/api/v1/nodes/{_seg(name)}/drain-cleared", {}))

    def ready(self, name: str, image: str, boot_time: float | int, node_token: str) -> dict[str, Any]:
        body = {"image": image, "boot_time": boot_time}
        return dict(self.call("POST", f"/api/v1/nodes/{_seg(name)}/ready", body, token=node_token))

    def deployment(self, deployment_id: int) -> dict[str, Any]:
        return dict(self.get(f"/api/v1/deployments/{int(deployment_id)}"))

    def report(
        self,
        deployment_id: int,
        token: str,
        stage: str,
        progress_bytes: int | None = None,
        message: str | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"stage": stage}
        if progress_bytes is not None:
            body["progress_bytes"] = progress_bytes
        if message is not None:
            body["message"] = message
        path = f"/api/v1/deployments/{int(deployment_id)}/report"
        return dict(self.call("POST", path, body, token=token))

    def images(self) -> list[dict[str, Any]]:
        return list(self.get("/api/v1/images")["images"])

    def image(self, name: str) -> dict[str, Any]:
        return dict(self.get(f"/api/v1/images/{_seg(name)}"))

    def add_image(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        return dict(self.call("POST", "/api/v1/images", dict(manifest)))

    def remove_image(self, name: str) -> None:
        self.call("DELETE", f"/api/v1/images/{_seg(name)}")

    def sync_images(self) -> dict[str, Any]:
        return dict(self.call("POST", "/api/v1/images/sync", {}))

    def events(
        self, node: str | None = None, since: int | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        return list(self.get("/api/v1/events", node=node, since=since, limit=limit)["events"])

    def follow_events(
        self, since: int | None = None, node: str | None = None, idle_timeout: float = 60.0
    ) -> Iterator[dict[str, Any]]:
        """Events as they happen, from the SSE stream; reconnects (resuming by id) when a stream ends.

        The server ends each stream after a while on purpose (it holds a worker thread); the reconnect
        is transparent. A stream silent for ``idle_timeout`` (no event, no heartbeat) counts as broken.
        """
        last = since
        failures = 0
        while True:
            req = self._request("GET", "/api/v1/events/stream", None, None, {"node": node, "progress": 0})
            req.add_header("Accept", "text/event-stream")
            if last is not None:
                req.add_header("Last-Event-ID", str(last))
            try:
                with urllib.request.urlopen(req, timeout=idle_timeout) as resp:  # noqa: S310
                    failures = 0
                    for event in parse_sse(resp):
                        if event.get("id"):
                            last = int(event["id"])
                        if event.get("event", "message") == "event" and event.get("data"):
                            yield json.loads(event["data"])
            except urllib.error.HTTPError as exc:
                raise error_from_response(exc.code, exc.read(MAX_RESPONSE), req.full_url) from None
            except _TRANSIENT as exc:
                failures += 1
                if failures > max(self.retries, 1):
                    raise BackendError(
                        f"event stream from {self.base_url} broke: {getattr(exc, 'reason', exc)}",
                        hint="is `cmt server` running?",
                    ) from None
                self.sleep(self._delay(failures - 1, None))


def parse_sse(lines: Any) -> Iterator[dict[str, str]]:
    """Server-sent events from an iterable of byte lines: dicts with ``id``, ``event`` and ``data``."""
    event: dict[str, str] = {}
    data: list[str] = []
    for raw in lines:
        line = raw.decode("utf-8", "replace").rstrip("\r\n")
        if not line:
            if data or event:
                if data:
                    event["data"] = "\n".join(data)
                yield event
            event, data = {}, []
            continue
        if line.startswith(":"):
            continue  # comment: the server's heartbeat
        key, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if key == "data":
            data.append(value)
        elif key in ("id", "event", "retry"):
            event[key] = value


def _seg(value: str) -> str:
    """One path segment, quoted so a name can never add segments or a query."""
    return urllib.parse.quote(value, safe="")
