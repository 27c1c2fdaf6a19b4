"""Re-hash an image's bytes and compare them with its manifest (I/O: a local file or an http(s) URL).

Kept apart from the pure modules: this is the one place in the catalogue package that reads image bytes.
Reading stops one chunk past the declared size, so a wrong URL pointing at something huge is not read
to the end just to say "too big".
"""

from __future__ import annotations

import hashlib
import http.client
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import BinaryIO

from ..errors import BackendError, DigestMismatch, NotFound
from .model import Image

CHUNK = 1 << 20
HTTP_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Digest:
    size: int
    sha256: str
    #: True when reading stopped early because the source is longer than the declared size.
    truncated: bool = False


@contextmanager
def open_image(image: Image, timeout: float = HTTP_TIMEOUT_S) -> Iterator[tuple[BinaryIO, int | None]]:
    """The image's bytes as a stream, with the length the source announces (None if it does not)."""
    path = image.local_path
    if path is not None:
        try:
            f = path.open("rb")
        except FileNotFoundError:
            raise NotFound(
                f"image {image.name}: file {path} does not exist",
                hint=f"put the file there or fix url in {image.manifest_path or 'the manifest'}",
            ) from None
        except OSError as exc:
            raise BackendError(f"image {image.name}: cannot read {path}: {exc.strerror or exc}") from None
        with f:
            yield f, path.stat().st_size
        return
    try:
        resp = urllib.request.urlopen(image.url, timeout=timeout)  # noqa: S310 (scheme checked at load)
    except urllib.error.HTTPError as exc:
        raise BackendError(
            f"image {image.name}: GET {image.url}: HTTP {exc.code} {exc.reason}",
            hint="check the url in the manifest and that the image server has the file",
        ) from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", exc)
        raise BackendError(
            f"image {image.name}: GET {image.url}: {reason}", hint="is the image server reachable from here?"
        ) from None
    with resp:
        length = resp.headers.get("Content-Length")
        yield resp, int(length) if length and length.isdigit() else None


def digest_image(
    image: Image, on_progress: Callable[[int], None] | None = None, timeout: float = HTTP_TIMEOUT_S
) -> Digest:
    """Size and sha256 of the image's bytes; ``on_progress(n)`` after every chunk of ``n`` bytes."""
    h = hashlib.sha256()
    size = 0
    limit = image.size + CHUNK
    with open_image(image, timeout) as (stream, _length):
        try:
            while size < limit:
                chunk = stream.read(min(CHUNK, limit - size))
                if not chunk:
                    break
                h.update(chunk)
                size += len(chunk)
                if on_progress is not None:
                    on_progress(len(chunk))
        except (OSError, http.client.HTTPException) as exc:
            raise BackendError(
                f"image {image.name}: reading {image.url} failed after {size} bytes: {exc}"
            ) from None
    return Digest(size, h.hexdigest(), truncated=size >= limit)


def check_digest(image: Image, got: Digest) -> None:
    """``DigestMismatch`` unless ``got`` is what the manifest declares."""
    where = image.manifest_path or "the manifest"
    if got.truncated:
        raise DigestMismatch(
            f"image {image.name}: {image.url} has more than {image.size} bytes (the manifest's size)",
            hint=f"check that url points at the right file, or set size in {where}",
            details={"expected_size": image.size},
        )
    if got.size != image.size:
        raise DigestMismatch(
            f"image {image.name}: {image.url} has {got.size} bytes, the manifest says {image.size}",
            hint=f"the file is incomplete or another one; re-copy it, or fix size and sha256 in {where}",
            details={"expected_size": image.size, "size": got.size},
        )
    if got.sha256 != image.sha256:
        raise DigestMismatch(
            f"image {image.name}: sha256 of {image.url} is {got.sha256}, the manifest says {image.sha256}",
            hint=f"the file is corrupt or another one; re-copy it, or fix sha256 in {where}",
            details={"expected_sha256": image.sha256, "sha256": got.sha256},
        )


def verify_image(
    image: Image, on_progress: Callable[[int], None] | None = None, timeout: float = HTTP_TIMEOUT_S
) -> Digest:
    """Hash the image's bytes and raise ``DigestMismatch`` if they differ from the manifest."""
    got = digest_image(image, on_progress, timeout)
    check_digest(image, got)
    return got
