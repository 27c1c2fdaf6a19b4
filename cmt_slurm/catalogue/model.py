"""The image model: one ``Image`` per manifest, and the ``Catalogue`` that holds them (both immutable)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from ..versions import Version

ARCHES = ("x86_64", "aarch64")
FORMATS = ("qcow2", "raw")
IMAGE_NAME = re.compile(r"[a-z0-9][a-z0-9._-]*")
_URL = re.compile(r"(?i)(https?)://[^/\s?#]+")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")


def is_http_url(url: str) -> bool:
    return _URL.match(url) is not None


def has_scheme(url: str) -> bool:
    return _SCHEME.match(url) is not None


@dataclass(frozen=True)
class Image:
    """One bootable OS image, as its manifest declares it.

    ``url`` is kept as written; ``resolved_url`` and ``local_path`` say where the bytes are: an http(s)
    URL is used as is (``local_path`` None), anything else is a path, relative to the manifest's directory.
    """

    name: str
    os: str
    os_name: str
    os_version: str
    glibc: Version
    arch: str
    format: str
    url: str
    sha256: str
    size: int
    default: bool = False
    built: date | None = None
    kernel_args: str = ""
    features: tuple[str, ...] = ()
    manifest_path: Path | None = field(default=None, compare=False)

    @property
    def local_path(self) -> Path | None:
        if is_http_url(self.url):
            return None
        path = Path(self.url)
        if not path.is_absolute() and self.manifest_path is not None:
            path = self.manifest_path.parent / path
        return path

    @property
    def resolved_url(self) -> str:
        """An absolute URL: the http(s) URL, or ``file://`` for a local file."""
        path = self.local_path
        if path is None:
            return self.url
        return path.absolute().as_uri()

    def to_json(self) -> dict[str, Any]:
        """Plain JSON types, stable keys: what ``cmt image show --json`` and the API print."""
        return {
            "name": self.name,
            "os": self.os,
            "os_name": self.os_name,
            "os_version": self.os_version,
            "glibc": str(self.glibc),
            "arch": self.arch,
            "format": self.format,
            "url": self.url,
            "resolved_url": self.resolved_url,
            "sha256": self.sha256,
            "size": self.size,
            "default": self.default,
            "built": self.built.isoformat() if self.built else None,
            "kernel_args": self.kernel_args,
            "features": list(self.features),
            "manifest": str(self.manifest_path) if self.manifest_path else None,
        }


@dataclass(frozen=True)
class Catalogue:
    """Every image of a site, sorted by name; ``load_catalogue`` builds it and checks cross-file rules."""

    images: tuple[Image, ...] = ()
    directory: Path | None = None

    @classmethod
    def of(cls, images: Iterable[Image], directory: Path | None = None) -> Catalogue:
        return cls(tuple(sorted(images, key=lambda i: i.name)), directory)

    def __iter__(self) -> Iterator[Image]:
        return iter(self.images)

    def __len__(self) -> int:
        return len(self.images)

    def get(self, name: str) -> Image | None:
        return next((i for i in self.images if i.name == name), None)

    def by_arch(self, arch: str) -> tuple[Image, ...]:
        return tuple(i for i in self.images if i.arch == arch)

    def default(self, arch: str) -> Image | None:
        return next((i for i in self.images if i.arch == arch and i.default), None)

    @property
    def os_tags(self) -> tuple[str, ...]:
        return tuple(sorted({i.os for i in self.images}))

    @property
    def arches(self) -> tuple[str, ...]:
        return tuple(sorted({i.arch for i in self.images}))
