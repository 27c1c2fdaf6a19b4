"""Deterministic ``newc`` cpio archives (the Linux initramfs format), written without the cpio tool.

Entries are sorted by path, parents before children, with fixed owners (0:0) and a fixed mtime, so the same
input tree gives the same bytes. Hard links are stored as separate files (the initramfs is unpacked into a
tmpfs, where that only costs the duplicate's size).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from ...errors import BadInput

_MAGIC = b"070701"
_TRAILER = "TRAILER!!!"


@dataclass(frozen=True)
class CpioEntry:
    """One archive member; ``path`` is relative (no leading ``/``), ``data`` is the content or link target."""

    path: str
    mode: int
    data: bytes = b""
    rdev_major: int = 0
    rdev_minor: int = 0

    @staticmethod
    def directory(path: str, perm: int = 0o755) -> CpioEntry:
        return CpioEntry(path, stat.S_IFDIR | perm)

    @staticmethod
    def file(path: str, data: bytes, perm: int = 0o644) -> CpioEntry:
        return CpioEntry(path, stat.S_IFREG | perm, data)

    @staticmethod
    def symlink(path: str, target: str) -> CpioEntry:
        return CpioEntry(path, stat.S_IFLNK | 0o777, target.encode())

    @staticmethod
    def chardev(path: str, major: int, minor: int, perm: int = 0o600) -> CpioEntry:
        return CpioEntry(path, stat.S_IFCHR | perm, b"", major, minor)


def _pad(n: int) -> bytes:
    return b"\0" * ((4 - n % 4) % 4)


def _header(ino: int, entry: CpioEntry, name: bytes, mtime: int) -> bytes:
    fields = (
        ino,
        entry.mode,
        0,  # uid
        0,  # gid
        2 if stat.S_ISDIR(entry.mode) else 1,  # nlink
        mtime,
        len(entry.data),
        0,  # dev major
        0,  # dev minor
        entry.rdev_major,
        entry.rdev_minor,
        len(name) + 1,
        0,  # check
    )
    return _MAGIC + b"".join(b"%08x" % f for f in fields)


def _check(entry: CpioEntry) -> None:
    p = PurePosixPath(entry.path)
    if entry.path.startswith("/") or ".." in p.parts or entry.path in ("", "."):
        raise BadInput(f"cpio member {entry.path!r} is not a relative path inside the archive")


def with_parents(entries: Iterable[CpioEntry]) -> list[CpioEntry]:
    """The entries plus any missing parent directories (0755), sorted so that parents come first."""
    by_path: dict[str, CpioEntry] = {}
    for e in entries:
        _check(e)
        by_path[e.path] = e
    for path in list(by_path):
        for parent in PurePosixPath(path).parents:
            key = parent.as_posix()
            if key != "." and key not in by_path:
                by_path[key] = CpioEntry.directory(key)
    return [by_path[k] for k in sorted(by_path, key=lambda s: PurePosixPath(s).parts)]


def write_newc(entries: Iterable[CpioEntry], out: BinaryIO, *, mtime: int = 0) -> int:
    """Write a newc archive of ``entries`` (parents added, sorted) to ``out``; returns the bytes written."""
    written = 0
    ino = 300000  # arbitrary but fixed: initramfs unpacking only uses inode numbers to spot hard links
    for entry in [*with_parents(entries), CpioEntry(_TRAILER, 0)]:
        ino += 1
        name = entry.path.encode()
        head = _header(
            0 if entry.path == _TRAILER else ino, entry, name, 0 if entry.path == _TRAILER else mtime
        )
        chunk = head + name + b"\0"
        chunk += _pad(len(chunk))
        chunk += entry.data + _pad(len(entry.data))
        out.write(chunk)
        written += len(chunk)
    return written


def entries_from_tree(root: Path, prefix: str = "") -> list[CpioEntry]:
    """Every directory, file and symlink under ``root`` as entries under ``prefix`` (modes kept)."""
    out: list[CpioEntry] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        base = Path(dirpath)
        for name in [*dirnames, *sorted(filenames)]:
            path = base / name
            rel = (PurePosixPath(prefix) / path.relative_to(root).as_posix()).as_posix().lstrip("/")
            st = path.lstat()
            perm = stat.S_IMODE(st.st_mode)
            if stat.S_ISLNK(st.st_mode):
                out.append(CpioEntry.symlink(rel, os.readlink(path)))
            elif stat.S_ISDIR(st.st_mode):
                out.append(CpioEntry.directory(rel, perm))
            elif stat.S_ISREG(st.st_mode):
                out.append(CpioEntry.file(rel, path.read_bytes(), perm))
            else:
                raise BadInput(f"{path}: only files, directories and symlinks go into a cpio from a tree")
    return out
