"""Pure parts of the boot server and its client: Range parsing, error mapping, SSE parsing, fixed scripts."""

from __future__ import annotations

import email.message
import io
import json
import urllib.error
import urllib.request

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cmt_slurm.apiclient import ApiClient, error_from_response, parse_sse
from cmt_slurm.errors import BackendError, BadInput, Busy, ConfigError, Conflict, NotFound, PayloadTooLarge
from cmt_slurm.server.boot_context import _reason
from cmt_slurm.server.errors import boot_error_script
from cmt_slurm.server.images_http import ByteRange, Unsatisfiable, parse_byte_range


@pytest.mark.parametrize(
    ("header", "size", "want"),
    [
        (None, 100, None),
        ("bytes=0-9", 100, ByteRange(0, 10)),
        ("bytes=90-", 100, ByteRange(90, 100)),
        ("bytes=90-500", 100, ByteRange(90, 100)),
        ("bytes=-10", 100, ByteRange(90, 100)),
        ("bytes=-500", 100, ByteRange(0, 100)),
        ("BYTES = 5-5", 100, ByteRange(5, 6)),  # unit case and spaces: leniently accepted
        ("bytes=5-5", 100, ByteRange(5, 6)),
        ("bytes=9-2", 100, None),  # invalid: ignored, whole file
        ("bytes=0-1,5-6", 100, None),  # multi-range: whole file
        ("items=0-9", 100, None),
        ("bytes=a-b", 100, None),
        ("bytes=", 100, None),
    ],
)
def test_parse_byte_range(header: str | None, size: int, want: ByteRange | None) -> None:
    assert parse_byte_range(header, size) == want


@pytest.mark.parametrize(
    ("header", "size"), [("bytes=100-", 100), ("bytes=200-300", 100), ("bytes=-0", 100), ("bytes=0-", 0)]
)
def test_unsatisfiable_ranges(header: str, size: int) -> None:
    with pytest.raises(Unsatisfiable):
        parse_byte_range(header, size)


@given(st.integers(0, 10**12), st.integers(0, 10**12), st.integers(1, 10**12))
def test_ranges_stay_inside_the_file(first: int, last: int, size: int) -> None:
    try:
        rng = parse_byte_range(f"bytes={first}-{last}", size)
    except Unsatisfiable:
        assert first >= size
        return
    if rng is None:
        assert last < first
    else:
        assert 0 <= rng.start < rng.stop <= size and rng.start == first


@pytest.mark.parametrize(
    ("status", "code", "cls"),
    [
        (400, "bad_input", BadInput),
        (400, "bad_config", ConfigError),
        (404, "not_found", NotFound),
        (409, "conflict", Conflict),
        (413, "too_large", PayloadTooLarge),
        (503, "busy", Busy),
        (409, "some_future_code", Conflict),
    ],
)
def test_error_json_maps_to_the_error_class(status: int, code: str, cls: type[Exception]) -> None:
    body = json.dumps({"error": {"code": code, "message": "m", "hint": "h", "details": {"x": 1}}}).encode()
    err = error_from_response(status, body, "http://s/x")
    assert type(err) is cls
    assert err.message == "m" and err.hint == "h" and err.details["x"] == 1


def test_non_json_error_is_a_backend_error() -> None:
    err = error_from_response(502, b"<html>Bad Gateway</html>", "http://s/x")
    assert isinstance(err, BackendError) and "HTTP 502" in err.message


def test_client_refuses_non_http_urls() -> None:
    with pytest.raises(BadInput):
        ApiClient("file:///etc/passwd")


def test_connection_errors_retry_with_bounded_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    def refused(req: urllib.request.Request, timeout: float) -> object:
        calls.append(req.full_url)
        raise urllib.error.URLError(ConnectionRefusedError(111, "Connection refused"))

    monkeypatch.setattr(urllib.request, "urlopen", refused)
    slept: list[float] = []
    client = ApiClient("http://127.0.0.1:9", retries=3, backoff=0.5, max_backoff=1.0, sleep=slept.append)
    with pytest.raises(BackendError, match="cannot reach the boot server"):
        client.nodes()
    assert len(calls) == 4 and len(slept) == 3
    assert all(d <= 1.0 * 1.25 for d in slept)


def test_4xx_is_not_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    def conflict(req: urllib.request.Request, timeout: float) -> object:
        calls.append(req.full_url)
        body = io.BytesIO(b'{"error": {"code": "conflict", "message": "no", "hint": null}}')
        raise urllib.error.HTTPError(req.full_url, 409, "Conflict", email.message.Message(), body)

    monkeypatch.setattr(urllib.request, "urlopen", conflict)
    with pytest.raises(Conflict):
        ApiClient("http://127.0.0.1:9", retries=3, sleep=lambda _: None).set_target("n", "i")
    assert len(calls) == 1


def test_parse_sse() -> None:
    lines = [
        b"retry: 1000\n",
        b"\n",
        b": keepalive\n",
        b"\n",
        b"id: 7\n",
        b"event: event\n",
        b'data: {"a":\n',
        b"data: 1}\n",
        b"\n",
    ]
    events = list(parse_sse(lines))
    assert events == [{"retry": "1000"}, {"id": "7", "event": "event", "data": '{"a":\n1}'}]


def test_boot_error_script_drops_what_ipxe_would_interpret() -> None:
    script = boot_error_script(
        'bad ${net0/mac} && reboot; "x"', "http://10.0.0.1/boot/ipxe?mac=${net0/mac}", 7
    )
    lines = script.splitlines()
    assert lines[0] == "#!ipxe"
    assert lines[1] == "echo cmt: bad net0/mac  reboot x"
    assert "sleep 7" in lines and lines[-1].endswith("|| reboot")


def test_wait_reason_is_made_echo_safe() -> None:
    shown = _reason("discovered: no image; waiting ${x}\n&& reboot")
    assert shown.startswith("discovered: no image; waiting") and shown.endswith("reboot")
    assert not set(shown) & set("${}&\n\\\"'")
