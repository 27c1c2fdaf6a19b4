"""HTTP for the agent: bounded timeouts, retries of named transient errors only, resumable downloads.

stdlib only (``urllib``): this runs in the live initramfs. ``download`` hashes while it writes and resumes
with ``Range`` after a dropped connection, so a server restart mid-transfer costs only the retry wait.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol, TypeVar

from ..errors import BackendError, BadInput

T = TypeVar("T")
CHUNK = 1 << 20


class Response(Protocol):
    status: int

    def read(self, n: int = -1) -> bytes: ...
    def getheader(self, name: str, default: str | None = None) -> str | None: ...
    def close(self) -> None: ...


#: Opens a request with a timeout; ``urllib.request.urlopen`` in production, a fake in tests.
Opener = Callable[[urllib.request.Request, float], Response]


def urlopen(request: urllib.request.Request, timeout: float) -> Response:
    response: Response = urllib.request.urlopen(request, timeout=timeout)  # noqa: S310 (http(s) only)
    return response


class Transient(BackendError):
    """A failure worth retrying: 5xx, connection refused/reset, timeout, truncated body."""

    code = "transient"


class Fatal(BackendError):
    """An HTTP answer that retrying cannot change (4xx)."""

    code = "http_error"

    def __init__(self, message: str, status: int, body: bytes = b"", **kwargs: object):
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.status = status
        self.body = body


TRANSIENT_EXCEPTIONS: tuple[type[BaseException], ...] = (
    ConnectionError,  # refused, reset, aborted, broken pipe
    TimeoutError,
    socket.timeout,
    http.client.IncompleteRead,
    http.client.RemoteDisconnected,
)


def classify(exc: BaseException, what: str) -> BackendError:
    """Map an urllib/socket exception to ``Transient`` (retry) or ``Fatal`` (give up)."""
    if isinstance(exc, urllib.error.HTTPError):
        body = b""
        with contextlib.suppress(Exception):  # the body is only a courtesy
            body = exc.read()
        message = f"{what}: HTTP {exc.code} {exc.reason}"
        if exc.code >= 500:
            return Transient(message)
        return Fatal(message, exc.code, body)
    if isinstance(exc, urllib.error.URLError) and isinstance(exc.reason, BaseException):
        return classify(exc.reason, what)
    if isinstance(exc, TRANSIENT_EXCEPTIONS):
        return Transient(f"{what}: {type(exc).__name__}: {exc}")
    if isinstance(exc, urllib.error.URLError):
        return Fatal(f"{what}: {exc.reason}", 0)
    if isinstance(exc, OSError):
        return Transient(f"{what}: {exc}")
    raise exc


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff: ``base``, 2×base, … capped at ``cap`` seconds, ``attempts`` tries in all."""

    attempts: int = 6
    base: float = 1.0
    cap: float = 15.0

    def delays(self) -> list[float]:
        return [min(self.cap, self.base * 2**i) for i in range(self.attempts - 1)]


def with_retries(
    action: Callable[[], T],
    policy: RetryPolicy,
    sleep: Callable[[float], None] = time.sleep,
    on_retry: Callable[[Transient, float], None] | None = None,
) -> T:
    """Run ``action``; on ``Transient`` wait and retry per ``policy``; anything else propagates."""
    delays = policy.delays()
    while True:
        try:
            return action()
        except Transient as exc:
            if not delays:
                raise Transient(
                    f"{exc.message} (gave up after {policy.attempts} attempts)",
                    hint="check that the boot server is up and reachable from the node",
                ) from None
            delay = delays.pop(0)
            if on_retry is not None:
                on_retry(exc, delay)
            sleep(delay)


@dataclass
class DownloadResult:
    size: int
    sha256: str
    attempts: int


def download(
    url: str,
    dest: IO[bytes] | None,
    *,
    opener: Opener = urlopen,
    policy: RetryPolicy = RetryPolicy(),
    sleep: Callable[[float], None] = time.sleep,
    timeout: float = 30.0,
    on_bytes: Callable[[int], None] | None = None,
    on_retry: Callable[[Transient, float], None] | None = None,
    expected_size: int | None = None,
) -> DownloadResult:
    """Stream ``url`` into ``dest`` (or only hash it when ``dest`` is None), resuming after drops.

    A resumed request asks ``Range: bytes=N-`` and must get 206 from offset N; a 200 restarts from zero
    (the hash is recomputed over what is written), so a server without Range support is still correct.
    :raises Transient: retries exhausted. :raises Fatal: a 4xx answer.
    """
    state = {"done": 0, "attempts": 0}
    digest = [hashlib.sha256()]

    def attempt() -> None:
        state["attempts"] += 1
        request = urllib.request.Request(url)  # noqa: S310 (http(s) checked by the caller)
        if state["done"]:
            request.add_header("Range", f"bytes={state['done']}-")
        try:
            response = opener(request, timeout)
        except Exception as exc:  # classified right here
            raise classify(exc, f"GET {url}") from None
        try:
            if state["done"] and response.status != 206:
                state["done"] = 0
                digest[0] = hashlib.sha256()
                if dest is not None:
                    dest.seek(0)
                    dest.truncate()
            while True:
                try:
                    chunk = response.read(CHUNK)
                except Exception as exc:
                    raise classify(exc, f"GET {url} at byte {state['done']}") from None
                if not chunk:
                    break
                digest[0].update(chunk)
                if dest is not None:
                    dest.write(chunk)
                state["done"] += len(chunk)
                if on_bytes is not None:
                    on_bytes(state["done"])
        finally:
            response.close()
        if expected_size is not None and state["done"] < expected_size:
            raise Transient(f"GET {url}: connection closed at byte {state['done']} of {expected_size}")

    with_retries(attempt, policy, sleep, on_retry)
    if dest is not None:
        dest.flush()
    return DownloadResult(state["done"], digest[0].hexdigest(), state["attempts"])


def check_digest(actual: str, expected: str, source: str) -> None:
    if actual.lower() != expected.lower():
        raise BadInput(
            f"sha256 mismatch for {source}: got {actual}, catalogue says {expected}",
            hint="the image file changed or is corrupt; rebuild it or fix the manifest's sha256",
        )


def meminfo_available(text: str) -> int:
    """``MemAvailable`` from /proc/meminfo, in bytes."""
    for line in text.splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    raise BadInput("/proc/meminfo has no MemAvailable line")


def fits_in_ram(size: int, mem_available: int, fs_free: int, margin: int = 256 << 20) -> bool:
    """Keep a copy in RAM only when it leaves ``margin`` bytes (or a quarter of the image) for the rest:
    qemu-img's buffers, the agent, page cache for the write."""
    reserve = max(margin, size // 4)
    return size + reserve <= mem_available and size <= fs_free


def ram_room(directory: Path) -> tuple[int, int]:
    """(MemAvailable, free bytes in ``directory``'s filesystem)."""
    mem = meminfo_available(Path("/proc/meminfo").read_text())
    st = os.statvfs(directory)
    return mem, st.f_bavail * st.f_frsize


class ProgressThrottle:
    """Forwards byte counts at most every ``interval`` seconds (and always the last one on ``flush``)."""

    def __init__(
        self, send: Callable[[int], None], interval: float = 1.0, clock: Callable[[], float] = time.monotonic
    ):
        self._send = send
        self._interval = interval
        self._clock = clock
        self._last_sent = -1e9
        self._latest: int | None = None

    def __call__(self, done: int) -> None:
        self._latest = done
        now = self._clock()
        if now - self._last_sent >= self._interval:
            self._last_sent = now
            self._send(done)

    def flush(self) -> None:
        if self._latest is not None:
            self._send(self._latest)


def require_http_url(url: str, what: str) -> None:
    if not url.startswith(("http://", "https://")):
        raise BadInput(f"{what} {url!r} is not an http(s) URL", hint="catalogue URLs must be http(s)")
