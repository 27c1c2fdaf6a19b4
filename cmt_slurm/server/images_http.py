"""Serving file bytes: catalogue images and the live env, with Range, ETag and the kernel's sendfile.

The body is never read through Python under gunicorn: the response iterable is the server's
``wsgi.file_wrapper`` around an *offset-limited* file (:class:`FileSlice`) whose descriptor is already
positioned at the range start. gunicorn then calls ``socket.sendfile(fd, offset=<fd position>,
count=<Content-Length>)``, so ranged requests (qemu-img reads a qcow2 in clusters) take the same zero-copy
path as full downloads. Servers without sendfile (werkzeug's dev server, the test client) iterate the
wrapper, and the slice stops at the range end because those servers do not truncate on their own.

Only single ranges are honoured; a multi-range request gets the whole file (RFC 9110 allows ignoring
``Range``), a malformed header is ignored, and an unsatisfiable one gets 416 with ``Content-Range: */size``.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from email.utils import formatdate, parsedate_to_datetime
from pathlib import Path
from typing import Any

from flask import Response, request
from werkzeug.wsgi import FileWrapper

from ..errors import NotFound

#: Block size for servers that iterate the wrapper instead of using sendfile.
BLOCK_SIZE = 1 << 16


@dataclass(frozen=True)
class ByteRange:
    start: int
    stop: int  # exclusive

    @property
    def length(self) -> int:
        return self.stop - self.start


class Unsatisfiable(Exception):
    """The Range header is well formed but selects no byte of the file (answer 416)."""


def parse_byte_range(header: str | None, size: int) -> ByteRange | None:
    """The one range of a ``Range`` header, or ``None`` to send the whole file.

    :raises Unsatisfiable: a single, well-formed range that starts past the end (or ``bytes=-0``).
    """
    if not header:
        return None
    unit, sep, spec = header.partition("=")
    if not sep or unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = spec.strip().partition("-")
    if not dash:
        return None
    first, last = first.strip(), last.strip()
    if not first:  # suffix: the last N bytes
        if not last.isdigit():
            return None
        n = int(last)
        if n == 0 or size == 0:
            raise Unsatisfiable
        return ByteRange(max(0, size - n), size)
    if not first.isdigit() or (last and not last.isdigit()):
        return None
    start = int(first)
    if last and int(last) < start:
        return None  # invalid range: the header is ignored
    if start >= size:
        raise Unsatisfiable
    stop = size if not last else min(int(last) + 1, size)
    return ByteRange(start, stop)


class FileSlice(io.RawIOBase):
    """``length`` bytes of an open file from its current position; ``fileno()`` exposes the descriptor."""

    def __init__(self, raw: io.FileIO, length: int) -> None:
        super().__init__()
        self._raw = raw
        self._left = length

    def readable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._raw.fileno()

    # socket.sendfile() seeks the file object to the offset and past what it sent.
    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        return self._raw.seek(offset, whence)

    def tell(self) -> int:
        return self._raw.tell()

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer)
        if self._left <= 0:
            return 0
        n = self._raw.readinto(view[: min(len(view), self._left)]) or 0
        self._left -= n
        return n

    def close(self) -> None:
        self._raw.close()
        super().close()


def _etag_matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    if header.strip() == "*":
        return True
    # Weak comparison for If-None-Match (RFC 9110 13.1.2): W/ prefixes are ignored.
    return any(t.strip().removeprefix("W/") == etag for t in header.split(","))


def _if_range_allows(header: str | None, etag: str, mtime: float) -> bool:
    """True when the Range header may be honoured (no If-Range, or it names the current version)."""
    if not header:
        return True
    header = header.strip()
    if header.startswith('"'):
        return header == etag  # strong comparison only
    try:
        when = parsedate_to_datetime(header).timestamp()
    except (TypeError, ValueError):
        return False
    return int(mtime) == int(when)


def file_etag(path: Path, sha256: str | None) -> str:
    """A strong ETag: the declared content digest when there is one, else size and mtime."""
    if sha256:
        return f'"sha256-{sha256}"'
    st = path.stat()
    return f'"{st.st_size:x}-{st.st_mtime_ns:x}"'


def serve_file(
    path: Path,
    *,
    sha256: str | None = None,
    mimetype: str = "application/octet-stream",
    missing_hint: str = "check the catalogue entry's url, or put the file back",
) -> tuple[Response, int]:
    """Answer the current GET/HEAD request with ``path``; returns the response and body bytes to send.

    ``path`` comes from the server (catalogue entry or a fixed live-env name), never from the request.

    :raises NotFound: the file is not there (a catalogue entry whose file went missing).
    """
    try:
        raw = open(path, "rb", buffering=0)  # noqa: SIM115 - closed by the WSGI server via the wrapper
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        raise NotFound(
            f"{path.name}: file missing on the server",
            hint=missing_hint,
        ) from None
    try:
        st = os.fstat(raw.fileno())
        size = st.st_size
        etag = file_etag(path, sha256)
        headers = {
            "ETag": etag,
            "Accept-Ranges": "bytes",
            "Last-Modified": formatdate(st.st_mtime, usegmt=True),
            "Cache-Control": "no-cache",
        }
        if _etag_matches(request.headers.get("If-None-Match"), etag):
            raw.close()
            return Response(status=304, headers=headers), 0
        rng: ByteRange | None = None
        if _if_range_allows(request.headers.get("If-Range"), etag, st.st_mtime):
            try:
                rng = parse_byte_range(request.headers.get("Range"), size)
            except Unsatisfiable:
                raw.close()
                headers["Content-Range"] = f"bytes */{size}"
                headers["Content-Length"] = "0"
                return Response(b"", status=416, headers=headers), 0
        status, start, length = 200, 0, size
        if rng is not None:
            status, start, length = 206, rng.start, rng.length
            headers["Content-Range"] = f"bytes {rng.start}-{rng.stop - 1}/{size}"
        headers["Content-Length"] = str(length)
        if request.method == "HEAD":
            raw.close()
            resp = Response(b"", status=status, headers=headers, mimetype=mimetype)
            resp.headers["Content-Length"] = str(length)  # werkzeug would reset it to 0
            return resp, 0
        raw.seek(start)
        wrapper_cls = request.environ.get("wsgi.file_wrapper", FileWrapper)
        body = wrapper_cls(FileSlice(raw, length), BLOCK_SIZE)
        resp = Response(body, status=status, headers=headers, mimetype=mimetype, direct_passthrough=True)
        return resp, length
    except BaseException:
        raw.close()
        raise
