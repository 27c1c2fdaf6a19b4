"""Build the live reimager: Debian's kernel plus a busybox initramfs with python3 and the disk tools.

Two layers, because the project's code changes far more often than the tools: the *base* initramfs
(busybox, python3 with a trimmed, precompiled stdlib, qemu-img + block-curl, kexec, e2fsprogs, xfsprogs,
util-linux, gdisk, growpart, kernel modules, /init) is cached by its inputs; the *overlay* (the cmt_slurm
package the agent runs) is a second small cpio appended at use time. The kernel unpacks concatenated
archives in order, so the overlay lands on top of the base.
"""

from __future__ import annotations

import gzip
import io
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...errors import BackendError
from . import cpio, kernel
from .cache import KeyBuilder, sha256_file
from .closure import Stager
from .tools import SYSTEM_PATH, need, package_versions, run

#: Source packages whose versions go into the base's cache key.
HOST_PACKAGES = (
    "busybox-static", "python3.11-minimal", "libpython3.11-stdlib", "qemu-utils", "qemu-block-extra",
    "kexec-tools", "e2fsprogs", "xfsprogs", "cloud-guest-utils", "util-linux", "fdisk", "gdisk", "libc6",
    "libcurl3-gnutls", "ca-certificates", "zstd",
)  # fmt: skip

#: Top-level stdlib entries the agent can do without (measured: they are most of the stdlib's size).
STDLIB_DROP = frozenset(
    {
        "test", "idlelib", "tkinter", "turtledemo", "turtle.py", "ensurepip", "lib2to3", "pydoc_data",
        "pydoc.py", "distutils", "sqlite3", "dbm", "curses", "venv", "msilib", "unittest", "doctest.py",
        "site-packages", "dist-packages", "__phello__", "config-3.11-x86_64-linux-gnu", "LICENSE.txt",
        "mailbox.py", "imaplib.py", "nntplib.py", "smtplib.py", "telnetlib.py", "ftplib.py", "xmlrpc",
        "multiprocessing", "concurrent", "asyncio", "lib-dynload",
    }
)  # fmt: skip
#: lib-dynload extensions left out (their libraries are large, or they are tests/GUI/terminal).
DYNLOAD_DROP = (
    "_tkinter", "_sqlite3", "_dbm", "_gdbm", "_curses", "readline", "nis", "_test", "_xx", "xxlimited",
    "_ctypes_test", "audioop", "ossaudiodev", "_decimal", "_lsprof", "_multiprocessing", "_asyncio",
    "_codecs_",
)  # fmt: skip
#: What the overlay leaves out of cmt_slurm: the head-node parts (Flask, SQL, Click) and the lab itself.
OVERLAY_DROP = frozenset({"server", "store", "cli", "lab", "slurm", "__pycache__"})


@dataclass(frozen=True)
class LiveSources:
    """Where the live env's own files are: ``images/live/`` in the repository."""

    live_dir: Path

    @property
    def init(self) -> Path:
        return self.live_dir / "init"

    def names(self, file: str) -> list[str]:
        text = (self.live_dir / file).read_text()
        return [ln.split("#", 1)[0].strip() for ln in text.splitlines() if ln.split("#", 1)[0].strip()]


def base_key(src: LiveSources, kdeb: kernel.KernelDeb) -> KeyBuilder:
    key = KeyBuilder()
    key.add_tree("live", src.live_dir)
    here = Path(__file__).parent
    for name in ("live.py", "kernel.py", "closure.py", "cpio.py"):
        key.add_file(f"builder/{name}", here / name)
    key.add("kernel", f"{kdeb.package}={kdeb.version}")
    for pkg, version in package_versions(HOST_PACKAGES).items():
        key.add(f"pkg/{pkg}", version)
    return key


def build_base(out: Path, src: LiveSources, kdeb: kernel.KernelDeb, deb_cache: Path) -> dict[str, Any]:
    """Write ``vmlinuz`` and ``base.cpio.zst`` into ``out``; return sizes and versions."""
    work = out / "work"
    deb = kernel.download_deb(kdeb, deb_cache)
    (work / "kernel").mkdir(parents=True)
    run([need("dpkg-deb", "dpkg"), "-x", deb, work / "kernel"])
    vmlinuz = sorted((work / "kernel" / "boot").glob("vmlinuz-*"))
    if len(vmlinuz) != 1:
        raise BackendError(f"{deb.name}: expected one boot/vmlinuz-*, found {len(vmlinuz)}")
    shutil.copy2(vmlinuz[0], out / "vmlinuz")

    stage = work / "root"
    stager = Stager(stage)
    _add_busybox(stager)
    for name in src.names("contents.txt"):
        host = name if name.startswith("/") else need(name, "see images/live/contents.txt")
        stager.add_file(host)
    _add_extra_files(stager)
    stdlib = _add_python(stager, work)
    modules = _add_modules(stager, work / "kernel", src.names("modules.txt"))
    stager.add_text("/init", src.init.read_text(), 0o755)
    stager.add_text("/etc/udhcpc.script", (src.live_dir / "udhcpc.script").read_text(), 0o755)

    entries = [*cpio.entries_from_tree(stage), cpio.CpioEntry.chardev("dev/console", 5, 1)]
    raw = out / "base.cpio"
    with raw.open("wb") as fh:
        cpio_bytes = cpio.write_newc(entries, fh)
    # zstd: smaller than gzip -9 and several times faster to unpack, which counts under TCG.
    run([need("zstd", "zstd"), "-q", "-19", "-T0", "--rm", "-o", out / "base.cpio.zst", raw])
    shutil.rmtree(work)
    return {
        "kernel_package": f"{kdeb.package}={kdeb.version}",
        "kernel_release": modules["release"],
        "vmlinuz_bytes": (out / "vmlinuz").stat().st_size,
        "base_cpio_bytes": cpio_bytes,
        "base_initrd_bytes": (out / "base.cpio.zst").stat().st_size,
        "python_stdlib_bytes": stdlib,
        "modules": modules["order"],
        "vmlinuz_sha256": sha256_file(out / "vmlinuz"),
        "base_initrd_sha256": sha256_file(out / "base.cpio.zst"),
    }


def _add_busybox(stager: Stager) -> None:
    bb = "/bin/busybox"
    stager.add_file(bb, with_libs=False)
    listing = run([bb, "--list-full"])
    for applet in sorted(listing.split()):
        dst = stager.dest("/" + applet)
        if not dst.exists() and not dst.is_symlink():
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.symlink_to("/usr/bin/busybox")


def _add_extra_files(stager: Stager) -> None:
    stager.add_text("/etc/passwd", "root:x:0:0:root:/root:/bin/sh\n")
    stager.add_text("/etc/group", "root:x:0:\n")
    stager.add_text("/etc/hostname", "cmt-live\n")
    stager.add_text("/etc/resolv.conf", "")
    stager.add_text("/etc/profile", f'export PATH={SYSTEM_PATH}\nPS1="cmt-live# "\n')
    for d in ("root", "proc", "sys", "dev", "run", "tmp", "mnt", "var/tmp", "var/log"):
        (stager.root / d).mkdir(parents=True, exist_ok=True)
    (stager.root / "tmp").chmod(0o1777)
    udhcpc = stager.dest("/usr/share/udhcpc/default.script")
    udhcpc.parent.mkdir(parents=True, exist_ok=True)
    udhcpc.symlink_to("/etc/udhcpc.script")
    for name in ("mkfs.ext4", "mkfs.ext3", "mkfs.ext2"):
        link = stager.dest(f"/usr/sbin/{name}")
        if not link.exists():
            link.symlink_to("mke2fs")
    certs = Path("/etc/ssl/certs/ca-certificates.crt")
    if certs.exists():
        stager.add_file(str(certs.resolve()))
        link = stager.dest(str(certs))
        if not link.exists():
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(str(certs.resolve()))


def _add_python(stager: Stager, work: Path) -> int:
    """python3 with a trimmed stdlib compiled to sourceless .pyc (no compile at boot, half the bytes)."""
    py = need("python3", "python3")  # the Debian interpreter, not a venv's: SYSTEM_PATH comes first
    ver = run([py, "-c", "import sys; print(f'{sys.version_info[0]}.{sys.version_info[1]}')"]).strip()
    lib = Path(f"/usr/lib/python{ver}")
    dest = stager.dest(str(lib))
    dest.mkdir(parents=True, exist_ok=True)
    for item in sorted(lib.iterdir()):
        if item.name in STDLIB_DROP or item.name.replace(ver, "") in STDLIB_DROP:
            continue
        if item.is_dir():
            shutil.copytree(
                item, dest / item.name, symlinks=True, ignore=shutil.ignore_patterns("__pycache__")
            )
        elif item.suffix == ".py":
            shutil.copy2(item, dest / item.name)
    dynload = lib / "lib-dynload"
    for so in sorted(dynload.glob("*.so")):
        if not so.name.startswith(DYNLOAD_DROP):
            stager.add_file(str(so))
    compile_args = ["-q", "-b", "-j", "0", "--invalidation-mode", "unchecked-hash", "-d", str(lib), str(dest)]
    run([py, "-m", "compileall", *compile_args])
    for src_py in sorted(dest.rglob("*.py")):
        src_py.unlink()
    return sum(p.stat().st_size for p in dest.rglob("*") if p.is_file())


def _add_modules(stager: Stager, kroot: Path, wanted: list[str]) -> dict[str, Any]:
    mods = kernel.scan_modules(kroot / "lib" / "modules")
    order = kernel.closure_order(wanted, mods.deps)
    base = stager.dest(f"/usr/lib/modules/{mods.release}")
    plain = {n: _plain_ko(mods.paths[n]) for n in order}
    for name in order:
        dst = base / plain[name]
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_bytes(kernel.read_module(kroot / "lib" / "modules" / mods.release / mods.paths[name]))
    trimmed = kernel.ModuleSet(mods.release, plain, {n: mods.deps[n] for n in order})
    (base / "modules.dep").write_text(kernel.modules_dep_text(trimmed, order))
    for extra in ("modules.builtin", "modules.order", "modules.builtin.modinfo"):
        src = kroot / "lib" / "modules" / mods.release / extra
        if src.exists():
            shutil.copy2(src, base / extra)
    (stager.dest("/usr/lib/modules") / "load.order").write_text("".join(f"{plain[n]}\n" for n in order))
    return {"release": mods.release, "order": order}


def _plain_ko(rel: str) -> str:
    for suffix in (".ko.xz", ".ko.zst", ".ko.gz"):
        if rel.endswith(suffix):
            return rel[: -len(suffix)] + ".ko"
    return rel


def package_root() -> Path:
    """The cmt_slurm package directory this process imports (what the overlay carries)."""
    return Path(sys.modules["cmt_slurm"].__file__ or "").resolve().parent


def overlay_key(pkg: Path) -> KeyBuilder:
    key = KeyBuilder()
    for path in _overlay_files(pkg):
        key.add_file(path.relative_to(pkg).as_posix(), path)
    return key


def _overlay_files(pkg: Path) -> list[Path]:
    keep = []
    for path in sorted(pkg.rglob("*")):
        rel = path.relative_to(pkg)
        dropped = OVERLAY_DROP.intersection(rel.parts[:1] + rel.parts[-2:-1])
        if path.is_file() and not dropped and path.suffix in (".py", ".json", ".typed"):
            keep.append(path)
    return keep


def build_overlay(pkg: Path) -> bytes:
    """gzip'd newc cpio with ``usr/lib/cmt/python/cmt_slurm/...`` (sources only: a few hundred KB)."""
    entries = [
        cpio.CpioEntry.file(f"usr/lib/cmt/python/cmt_slurm/{p.relative_to(pkg).as_posix()}", p.read_bytes())
        for p in _overlay_files(pkg)
    ]
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", compresslevel=9, mtime=0) as gz:
        cpio.write_newc(entries, gz)  # type: ignore[arg-type]
    return buf.getvalue()
