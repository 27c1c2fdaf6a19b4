"""Copying programs from the build host into an initramfs staging tree with their shared libraries.

Paths are normalised to the merged-/usr layout (``/lib`` → ``/usr/lib``, ...); the staging tree gets the
``/bin``, ``/sbin``, ``/lib``, ``/lib64`` symlinks, so every path a program or ``ldd`` names resolves.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from ...errors import BackendError
from .tools import need, run

_LDD_LINE = re.compile(r"^\s*(?:(\S+)\s+=>\s+)?(/\S+)\s+\(0x[0-9a-f]+\)\s*$")
MERGED = ("bin", "sbin", "lib", "lib64")


def usr_path(path: str) -> str:
    """``/lib/x/y`` → ``/usr/lib/x/y`` (merged /usr); other absolute paths unchanged."""
    head = path.lstrip("/").split("/", 1)[0]
    return "/usr" + path if head in MERGED else path


def parse_ldd(text: str) -> list[str]:
    """Library paths in ``ldd`` output (the vdso and 'not found' lines have none)."""
    libs = []
    for line in text.splitlines():
        if "not found" in line:
            raise BackendError(
                f"ldd: a library is missing: {line.strip()}", hint="install the package providing it"
            )
        m = _LDD_LINE.match(line)
        if m:
            libs.append(m.group(2))
    return libs


class Stager:
    """Puts host files into ``root`` (a staging tree) once each, keeping symlink names."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._done: set[str] = set()
        self._ldd = need("ldd", "libc-bin")
        for d in MERGED:
            (root / "usr" / d).mkdir(parents=True, exist_ok=True)
            link = root / d
            if not link.is_symlink():
                link.symlink_to(f"usr/{d}")

    def dest(self, path: str) -> Path:
        return self.root / usr_path(path).lstrip("/")

    def add_file(self, host_path: str, *, with_libs: bool = True) -> None:
        """Copy ``host_path``; symlink chains stay symlinks to the real file; ELF files bring their libs."""
        key = usr_path(host_path)
        if key in self._done:
            return
        self._done.add(key)
        src = Path(host_path)
        if not src.exists():
            raise BackendError(
                f"{host_path} does not exist on the build host", hint="run scripts/install-deps"
            )
        dst = self.dest(host_path)
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_symlink():
            target = os.readlink(src)
            real = target if target.startswith("/") else os.path.normpath(os.path.join(src.parent, target))
            if dst.is_symlink() or dst.exists():
                dst.unlink()
            # Relative links stay relative; absolute ones point into the merged layout.
            dst.symlink_to(target if not target.startswith("/") else usr_path(target))
            self.add_file(real, with_libs=with_libs)
            return
        if dst.is_symlink():
            dst.unlink()
        shutil.copy2(src, dst)
        if with_libs and _is_elf(src):
            self.add_libs(host_path)

    def add_libs(self, host_path: str) -> None:
        out = run([self._ldd, host_path])
        if "not a dynamic executable" in out or "statically linked" in out:
            return
        for lib in parse_ldd(out):
            self.add_file(lib, with_libs=False)  # ldd already listed the whole closure

    def add_text(self, path: str, text: str, mode: int = 0o644) -> None:
        dst = self.dest(path)
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_text(text)
        dst.chmod(mode)


def _is_elf(path: Path) -> bool:
    with path.open("rb") as fh:
        return fh.read(4) == b"\x7fELF"
