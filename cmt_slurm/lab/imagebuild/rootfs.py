"""The OS tree of a node image: one mmdebstrap run (as root) with the recipe's hooks."""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from ...errors import BackendError, Forbidden
from .recipe import Recipe
from .tools import SYSTEM_PATH, need, run

#: Kernel driver directories a server node never loads (desktop, radio, media, legacy buses, FC HBAs).
_DROPPED_MODULE_DIRS = (
    "sound", "drivers/media", "drivers/gpu", "drivers/net/wireless", "net/wireless", "net/mac80211",
    "net/bluetooth", "drivers/bluetooth", "drivers/staging", "drivers/iio", "drivers/input/touchscreen",
    "drivers/input/joystick", "drivers/hid", "drivers/usb/gadget", "drivers/isdn", "drivers/comedi",
    "drivers/net/can", "drivers/net/wan", "drivers/net/usb", "drivers/net/ieee802154",
    "drivers/net/hamradio", "drivers/usb/serial", "drivers/mtd", "drivers/atm", "drivers/w1",
    "drivers/video", "drivers/scsi/qla2xxx", "drivers/scsi/lpfc", "drivers/scsi/bfa", "drivers/scsi/qedf",
    "drivers/scsi/qedi", "drivers/scsi/be2iscsi", "drivers/scsi/csiostor", "fs/ocfs2", "fs/ubifs", "fs/jfs",
    "fs/reiserfs", "fs/nilfs2", "net/6lowpan", "net/ieee802154", "net/can", "net/atm",
)  # fmt: skip
#: dpkg path filters: no docs, man pages, locales; none of the dropped drivers (bookworm ships them under
#: /lib, trixie under /usr/lib).
_EXCLUDES = (
    "/usr/share/man/*", "/usr/share/doc/*", "/usr/share/info/*", "/usr/share/lintian/*",
    "/usr/share/locale/*", "/usr/share/bug/*",
    *(f"{lib}/modules/*/kernel/{d}/*" for lib in ("/lib", "/usr/lib") for d in _DROPPED_MODULE_DIRS),
)  # fmt: skip
_INCLUDES = ("/usr/share/doc/*/copyright", "/usr/share/locale/locale.alias")


@dataclass(frozen=True)
class TreeFacts:
    kernel_release: str
    glibc: str
    bls_entry: str


def mmdebstrap_argv(recipe: Recipe, target: Path) -> list[str]:
    shared = recipe.shared
    argv = [
        need("mmdebstrap", "mmdebstrap"),
        "--mode=root",
        "--format=directory",
        "--variant=minbase",
        # mmdebstrap's apt cleanup ran the *host's* apt-get update/clean here (trixie target, mmdebstrap
        # 1.3.5): it emptied /var/lib/apt/lists and /var/cache/apt/archives of the build host. We clean the
        # new root ourselves (_drop_apt_leftovers).
        "--skip=cleanup/apt",
        '--aptopt=APT::Install-Recommends "false"',
        "--include=" + ",".join(recipe.packages),
        *(f"--dpkgopt=path-exclude={p}" for p in _EXCLUDES),
        *(f"--dpkgopt=path-include={p}" for p in _INCLUDES),
        f'--setup-hook=sh {shared / "setup-hook.sh"} "$1" {recipe.directory}',
        f'--essential-hook=sh {shared / "essential-hook.sh"} "$1"',
        f'--customize-hook=sh {shared / "customize-hook.sh"} "$1"',
        recipe.suite,
        str(target),
        *recipe.mirrors,
    ]
    return argv


def build_tree(recipe: Recipe, target: Path, root_uuid: str, log: Path) -> TreeFacts:
    """Run mmdebstrap into ``target`` (which must not exist) and read back what the disk step needs."""
    if os.geteuid() != 0:
        raise Forbidden(
            "building node images needs root (mmdebstrap --mode=root, device nodes in the tree)",
            hint="run images/build.py as root",
        )
    env = {
        # trixie's adduser (run by bookworm's slurm preinst) refuses an unusual PATH: the notes' trap.
        "PATH": SYSTEM_PATH,
        "CMT_OS": recipe.os,
        "CMT_ROOT_UUID": root_uuid,
        "CMT_KERNEL_ARGS": recipe.kernel_args,
        "CMT_APT_PREFERENCES": recipe.apt_preferences or "",
        "LC_ALL": "C.UTF-8",
    }
    run(mmdebstrap_argv(recipe, target), env=env, log=log)
    _drop_apt_leftovers(target)
    return read_facts(target)


def _drop_apt_leftovers(root: Path) -> None:
    # mmdebstrap's own cleanup leaves the .debs and lists behind in root mode with apt 3 targets.
    for d in (root / "var/cache/apt/archives", root / "var/lib/apt/lists"):
        if d.is_dir():
            for p in d.iterdir():
                if p.is_file() and p.name != "lock":
                    p.unlink()
                elif p.is_dir() and p.name == "partial":
                    shutil.rmtree(p)
                    p.mkdir()


def read_facts(root: Path) -> TreeFacts:
    """Kernel release, glibc version and BLS entry of a built tree (read from files, not assumed)."""
    entries = sorted((root / "boot/loader/entries").glob("*.conf"))
    if len(entries) != 1:
        raise BackendError(f"{root}: expected one BLS entry in boot/loader/entries, found {len(entries)}")
    bls = entries[0].read_text()
    version = re.search(r"^version\s+(\S+)", bls, re.MULTILINE)
    if version is None:
        raise BackendError(f"{root}: no 'version' line in {entries[0].name}")
    glibc = _glibc_version(root)
    return TreeFacts(kernel_release=version.group(1), glibc=glibc, bls_entry=bls)


def _glibc_version(root: Path) -> str:
    # libc.so.6 carries its banner ("... release version 2.36."): read it, no need to run the tree's code.
    libc = root / "usr/lib/x86_64-linux-gnu/libc.so.6"
    try:
        data = libc.read_bytes()
    except OSError as exc:
        raise BackendError(f"{libc}: cannot read the C library ({exc})") from exc
    m = re.search(rb"GNU C Library [^\n\0]*? version (\d+\.\d+)", data)
    if m is None:
        raise BackendError(f"{libc}: no 'GNU C Library ... version X.Y' banner")
    return m.group(1).decode()
