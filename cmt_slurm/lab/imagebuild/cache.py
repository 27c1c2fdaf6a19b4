"""Content-addressed build cache: ``${CMT_CACHE:-~/.cache/cmt-slurm}/<kind>/<key>/``.

A key is the sha256 of everything that decides the output (recipe files, package versions, builder code).
An entry is built in a temporary sibling directory and renamed into place only when complete, so a crash
leaves no half-built entry that a later run would trust; a lock file serialises builders of one key.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...errors import Busy, ConfigError

#: Written last into a finished entry; an entry without it is rebuilt.
DONE_FILE = "entry.json"


def cache_root() -> Path:
    """The cache directory: ``$CMT_CACHE`` or ``~/.cache/cmt-slurm``."""
    raw = os.environ.get("CMT_CACHE", "").strip()
    root = Path(raw).expanduser() if raw else Path.home() / ".cache" / "cmt-slurm"
    if raw and not root.is_absolute():
        raise ConfigError(
            f"CMT_CACHE={raw!r} is not an absolute path",
            hint="set CMT_CACHE=/var/cache/cmt-slurm or unset it",
        )
    return root


class KeyBuilder:
    """Accumulates named inputs into a cache key; the order of ``add`` calls does not matter."""

    def __init__(self) -> None:
        self._parts: dict[str, str] = {}

    def add(self, name: str, value: str | bytes) -> None:
        data = value.encode() if isinstance(value, str) else value
        self._parts[name] = hashlib.sha256(data).hexdigest()

    def add_file(self, name: str, path: Path) -> None:
        self.add(name, path.read_bytes() + f"\0mode={path.stat().st_mode & 0o777:o}".encode())

    def add_tree(self, name: str, root: Path, *, exclude: Iterable[str] = ("__pycache__",)) -> None:
        skip = set(exclude)
        for path in sorted(root.rglob("*")):
            rel = path.relative_to(root)
            if path.is_file() and not skip.intersection(rel.parts):
                self.add_file(f"{name}/{rel.as_posix()}", path)

    def digest(self) -> str:
        text = "\n".join(f"{k}={v}" for k, v in sorted(self._parts.items()))
        return hashlib.sha256(text.encode()).hexdigest()

    def inputs(self) -> dict[str, str]:
        return dict(sorted(self._parts.items()))


@dataclass(frozen=True)
class Entry:
    """A finished cache entry."""

    path: Path
    key: str
    #: What the builder recorded (sizes, versions, timings), from ``entry.json``.
    info: dict[str, Any]
    #: True when this call built it, False when it came from the cache.
    built_now: bool


def read_entry(path: Path, key: str) -> Entry | None:
    try:
        info = json.loads((path / DONE_FILE).read_text())
    except (OSError, ValueError):
        return None
    return Entry(path, key, info, built_now=False) if isinstance(info, dict) else None


@contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def build_entry(
    kind: str,
    key: str,
    build: Callable[[Path], dict[str, Any]],
    *,
    force: bool = False,
    root: Path | None = None,
) -> Entry:
    """Return the entry ``<root>/<kind>/<key>``, building it with ``build(tmpdir) -> info`` if needed.

    ``build`` writes its outputs into the empty directory it is given and returns JSON-able facts about
    them; the facts, the build time and the key are stored in ``entry.json`` and returned as ``info``.
    """
    base = (root or cache_root()) / kind
    final = base / key
    with _locked(base / f".{key}.lock"):
        if not force:
            entry = read_entry(final, key)
            if entry is not None:
                return entry
        _remove_stale_temps(base, key)
        tmp = base / f".tmp-{key}-{os.getpid()}"
        tmp.mkdir(parents=True)
        started = time.monotonic()
        try:
            info = build(tmp)
            info["build_seconds"] = round(time.monotonic() - started, 2)
            info["key"] = key
            info["built_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            (tmp / DONE_FILE).write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
            if final.exists():
                safe_rmtree(final)
            tmp.rename(final)
        finally:
            safe_rmtree(tmp)
    return Entry(final, key, info, built_now=True)


def _remove_stale_temps(base: Path, key: str) -> None:
    """Temp dirs of killed builds: of this key (we hold its lock), or of any key whose builder is gone."""
    for tmp in base.glob(".tmp-*"):
        pid_text = tmp.name.rsplit("-", 1)[-1]
        if tmp.name.startswith(f".tmp-{key}-") or (pid_text.isdigit() and not _alive(int(pid_text))):
            safe_rmtree(tmp)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def mounts_below(path: Path) -> list[str]:
    """Mount points at or under ``path`` (a killed chroot build can leave /dev or /proc bound there)."""
    prefix = str(path.resolve())
    try:
        lines = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return []
    points = [ln.split()[1].replace("\\040", " ") for ln in lines if len(ln.split()) > 1]
    return [p for p in points if p == prefix or p.startswith(prefix + "/")]


def safe_rmtree(path: Path) -> None:
    """``rm -rf path``, refusing when something is mounted below it (deleting a bound /dev would be fatal)."""
    if not path.exists():
        return
    mounted = mounts_below(path)
    if mounted:
        raise Busy(
            f"{path} still has mounts below it ({', '.join(mounted[:3])}); not deleting it",
            hint=f"umount them (umount -R {path}) and run the build again",
        )
    shutil.rmtree(path, ignore_errors=True)


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()
