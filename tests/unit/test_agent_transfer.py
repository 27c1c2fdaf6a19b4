import hashlib
import io
import urllib.error
import urllib.request
from email.message import Message

import pytest

from cmt_slurm.agent.transfer import (
    Fatal,
    ProgressThrottle,
    RetryPolicy,
    Transient,
    download,
    fits_in_ram,
    meminfo_available,
    with_retries,
)

DATA = bytes(range(256)) * 10000  # 2.56 MB


class FakeResponse:
    def __init__(self, body: bytes, status: int = 200, cut_at: int | None = None):
        self.status = status
        self._body = io.BytesIO(body)
        self._cut_at = cut_at
        self._sent = 0

    def read(self, n: int = -1) -> bytes:
        if self._cut_at is not None and self._sent >= self._cut_at:
            raise ConnectionResetError(104, "Connection reset by peer")
        chunk = self._body.read(n if self._cut_at is None else min(n, self._cut_at - self._sent))
        self._sent += len(chunk)
        return chunk

    def getheader(self, name: str, default: str | None = None) -> str | None:
        return default

    def close(self) -> None:
        pass


class Server:
    """Scripted answers: each item is 'ok', 'cut' (reset mid-body), 'refused', or an HTTP status."""

    def __init__(self, *script: object):
        self.script = list(script)
        self.ranges: list[str | None] = []

    def __call__(self, request: urllib.request.Request, timeout: float) -> FakeResponse:
        self.ranges.append(request.get_header("Range"))
        step = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        start = int(self.ranges[-1].split("=")[1].rstrip("-")) if self.ranges[-1] else 0
        if step == "refused":
            raise urllib.error.URLError(ConnectionRefusedError(111, "Connection refused"))
        if isinstance(step, int):
            raise urllib.error.HTTPError(request.full_url, step, "err", Message(), io.BytesIO(b"{}"))
        body = DATA[start:]
        return FakeResponse(body, 206 if start else 200, cut_at=len(DATA) // 3 if step == "cut" else None)


def test_download_resumes_with_range_after_a_reset() -> None:
    server = Server("cut", "refused", "ok")
    out = io.BytesIO()
    sleeps: list[float] = []
    seen: list[int] = []
    got = download("http://s/img", out, opener=server, sleep=sleeps.append, on_bytes=seen.append)
    assert out.getvalue() == DATA
    assert got.sha256 == hashlib.sha256(DATA).hexdigest()
    assert got.attempts == 3
    assert server.ranges[0] is None and server.ranges[2] == f"bytes={len(DATA) // 3}-"
    assert sleeps == [1.0, 2.0]
    assert seen[-1] == len(DATA)


def test_server_answering_200_to_a_range_restarts_the_hash() -> None:
    class NoRange(Server):
        def __call__(self, request: urllib.request.Request, timeout: float) -> FakeResponse:
            resp = super().__call__(request, timeout)
            return FakeResponse(DATA, 200) if request.get_header("Range") else resp

    out = io.BytesIO()
    got = download("http://s/img", out, opener=NoRange("cut", "ok"), sleep=lambda s: None)
    assert out.getvalue() == DATA and got.sha256 == hashlib.sha256(DATA).hexdigest()


def test_5xx_is_retried_then_gives_up() -> None:
    server = Server(503)
    sleeps: list[float] = []
    with pytest.raises(Transient, match="gave up after 4 attempts"):
        download(
            "http://s/img", io.BytesIO(), opener=server, policy=RetryPolicy(4, 1, 3), sleep=sleeps.append
        )
    assert sleeps == [1, 2, 3]


def test_4xx_is_not_retried() -> None:
    server = Server(404)
    with pytest.raises(Fatal, match="HTTP 404"):
        download("http://s/img", io.BytesIO(), opener=server, sleep=lambda s: None)
    assert len(server.ranges) == 1


def test_short_body_counts_as_transient() -> None:
    server = Server("ok")
    with pytest.raises(Transient, match="closed at byte"):
        download("http://s/img", None, opener=server, policy=RetryPolicy(1), expected_size=len(DATA) + 1)


def test_only_named_errors_are_retried() -> None:
    calls = []

    def boom() -> None:
        calls.append(1)
        raise ValueError("a bug")

    with pytest.raises(ValueError):
        with_retries(boom, RetryPolicy(5), sleep=lambda s: None)
    assert calls == [1]


def test_ram_decision() -> None:
    mib = 1 << 20
    assert fits_in_ram(120 * mib, 800 * mib, 900 * mib)
    assert not fits_in_ram(700 * mib, 800 * mib, 900 * mib)  # the margin is a quarter of the image
    assert not fits_in_ram(100 * mib, 800 * mib, 50 * mib)  # tmpfs too small
    assert meminfo_available("MemTotal: 10 kB\nMemAvailable:   2048 kB\n") == 2 * mib


def test_throttle_sends_at_most_every_interval_and_the_last_on_flush() -> None:
    now = [0.0]
    sent: list[int] = []
    throttle = ProgressThrottle(sent.append, 1.0, clock=lambda: now[0])
    for i in range(1, 11):
        now[0] = i * 0.3
        throttle(i)
    throttle.flush()
    assert sent == [1, 5, 9, 10]
