"""The live env's kernel: Debian's linux-image .deb, unpacked without installing, and a module closure.

The .deb ships no ``modules.dep`` and the build host need not have kmod, so dependencies are read from
each module's ``.modinfo`` strings (``depends=a,b``) and the closure is ordered here.
"""

from __future__ import annotations

import lzma
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ...errors import BackendError, BadInput
from .tools import need, run

_MODINFO_DEPENDS = re.compile(rb"(?:^|\0)depends=([^\0]*)\0")


@dataclass(frozen=True)
class KernelDeb:
    package: str
    version: str


def resolve_kernel_package(meta: str = "linux-image-amd64") -> KernelDeb:
    """The versioned package behind the metapackage (e.g. linux-image-6.1.0-57-amd64) and its version."""
    apt_cache = need("apt-cache", "apt")
    depends = run([apt_cache, "depends", meta])
    names = re.findall(r"Depends:\s+(linux-image-[0-9][^\s]*)", depends)
    if not names:
        raise BackendError(
            f"apt-cache finds no kernel package behind {meta}",
            hint="run apt-get update; check the apt sources",
        )
    show = run([apt_cache, "show", "--no-all-versions", names[0]])
    version = re.search(r"^Version:\s*(\S+)", show, re.MULTILINE)
    if version is None:
        raise BackendError(f"apt-cache show {names[0]} printed no Version", hint="run apt-get update")
    return KernelDeb(names[0], version.group(1))


def download_deb(deb: KernelDeb, into: Path) -> Path:
    """``apt-get download`` the exact version into ``into`` (kept there: the .deb is the slow part)."""
    into.mkdir(parents=True, exist_ok=True)
    existing = sorted(into.glob(f"{deb.package}_*.deb"))
    quoted = deb.version.replace(":", "%3a")
    for path in existing:
        if path.name.startswith(f"{deb.package}_{quoted}_"):
            return path
    run([need("apt-get", "apt"), "download", f"{deb.package}={deb.version}"], cwd=into)
    found = sorted(into.glob(f"{deb.package}_*.deb"))
    if not found:
        raise BackendError(
            f"apt-get download {deb.package} left no .deb in {into}", hint="check the apt sources"
        )
    return found[-1]


def module_name(path: str) -> str:
    """``kernel/fs/ext4/ext4.ko.xz`` → ``ext4``; dashes and underscores are the same to the kernel."""
    base = path.rsplit("/", 1)[-1]
    for suffix in (".ko.xz", ".ko.zst", ".ko.gz", ".ko"):
        if base.endswith(suffix):
            base = base[: -len(suffix)]
            break
    return base.replace("-", "_")


def modinfo_depends(blob: bytes) -> tuple[str, ...]:
    """Names in the ``depends=`` modinfo string of a module's bytes (uncompressed)."""
    m = _MODINFO_DEPENDS.search(blob)
    if m is None:
        return ()
    return tuple(d.decode().replace("-", "_") for d in m.group(1).split(b",") if d)


def closure_order(wanted: Sequence[str], deps: Mapping[str, Sequence[str]]) -> list[str]:
    """Modules to load, dependencies first, each once; ``wanted`` order is kept where deps allow.

    Raises BadInput naming a wanted module (or dependency) that the kernel does not have.
    """
    order: list[str] = []
    seen: set[str] = set()

    def visit(name: str, chain: tuple[str, ...]) -> None:
        if name in seen:
            return
        if name not in deps:
            via = f" (needed by {' -> '.join(chain)})" if chain else ""
            raise BadInput(
                f"kernel module {name}{via} is not in this kernel", hint="fix images/live/modules.txt"
            )
        seen.add(name)
        for dep in deps[name]:
            visit(dep, (*chain, name))
        order.append(name)

    for name in wanted:
        visit(name.replace("-", "_"), ())
    return order


def read_module(path: Path) -> bytes:
    data = path.read_bytes()
    return lzma.decompress(data) if path.name.endswith(".xz") else data


@dataclass(frozen=True)
class ModuleSet:
    #: kernel release, e.g. 6.1.0-57-amd64
    release: str
    #: module name -> path relative to lib/modules/<release>/
    paths: dict[str, str]
    deps: dict[str, tuple[str, ...]]


def scan_modules(modroot: Path) -> ModuleSet:
    """Index every module under ``<unpacked deb>/lib/modules/<release>``."""
    releases = sorted(p for p in modroot.iterdir() if p.is_dir())
    if len(releases) != 1:
        raise BackendError(f"{modroot}: expected one kernel release, found {[p.name for p in releases]}")
    rel_root = releases[0]
    paths: dict[str, str] = {}
    deps: dict[str, tuple[str, ...]] = {}
    for ko in sorted(rel_root.rglob("*.ko*")):
        rel = ko.relative_to(rel_root).as_posix()
        name = module_name(rel)
        paths[name] = rel
        deps[name] = modinfo_depends(read_module(ko))
    return ModuleSet(rel_root.name, paths, deps)


def modules_dep_text(mods: ModuleSet, names: Iterable[str]) -> str:
    """``modules.dep`` lines for ``names`` (busybox modprobe reads this file)."""
    lines = []
    for name in sorted(names):
        full: list[str] = []
        for dep in closure_order([name], mods.deps)[:-1][::-1]:
            full.append(mods.paths[dep])
        lines.append(f"{mods.paths[name]}: {' '.join(full)}".rstrip())
    return "\n".join(lines) + "\n"
