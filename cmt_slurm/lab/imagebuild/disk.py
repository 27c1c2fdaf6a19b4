"""Tree → ext4 → GPT disk → compressed qcow2, without loop devices and with fixed identifiers.

``mkfs.ext4 -d`` fills the filesystem from the tree (``-b 4096``: small filesystems would otherwise get
1 KiB blocks and could not grow far); the GPT is written by sfdisk on a plain file with fixed label and
partition UUIDs; the filesystem goes in at 1 MiB with dd; qemu-img compresses. UUIDs, the directory hash
seed and the filesystem's timestamps come from the cache key, so the same tree gives the same bytes.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

from ...errors import BackendError
from .tools import need, run

MIB = 1 << 20
#: GPT type "Linux filesystem data".
LINUX_FS_TYPE = "0FC63DAF-8483-4772-8E79-3D69D8477DE4"
#: 2026-01-01T00:00:00Z: the timestamp mke2fs writes into the superblock and new inodes.
FAKE_TIME = 1767225600


@dataclass(frozen=True)
class DiskIds:
    fs_uuid: str
    part_uuid: str
    label_id: str


def disk_ids(key: str) -> DiskIds:
    """Stable, distinct UUIDs derived from a cache key."""

    def make(tag: str) -> str:
        return str(uuid.UUID(bytes=hashlib.sha256(f"{tag}:{key}".encode()).digest()[:16], version=4))

    return DiskIds(make("fs"), make("part"), make("label"))


def fs_size_for(tree_bytes: int, tree_inodes: int) -> int:
    """Filesystem bytes for a tree: its data, 10 % slack, the journal and metadata (MiB-aligned).

    Small on purpose: the reimager writes the whole virtual disk (zeros too), then grows the root to the
    node's disk, so slack here only costs write time.
    """
    need_bytes = tree_bytes * 1.1 + tree_inodes * 256 + 64 * MIB
    return math.ceil(need_bytes / MIB) * MIB


def tree_usage(root: Path) -> tuple[int, int]:
    """(bytes in 4 KiB blocks, inode count) of a tree, without following symlinks or leaving the device."""
    blocks = 0
    inodes = 0
    dev = root.stat().st_dev
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if (Path(dirpath) / d).lstat().st_dev == dev]
        for name in dirnames + filenames:
            st = (Path(dirpath) / name).lstat()
            inodes += 1
            blocks += math.ceil(st.st_size / 4096)
    return blocks * 4096, inodes + 1


def pin_atimes(root: Path, when: int = FAKE_TIME) -> None:
    """Set every atime in the tree to ``when`` (mtimes kept): mkfs.ext4 -d copies atimes, and reading the
    tree (a previous build, a backup) moves them, which made otherwise identical builds differ."""
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames, ""]:
            path = Path(dirpath) / name if name else Path(dirpath)
            st = path.lstat()
            os.utime(path, ns=(when * 1_000_000_000, st.st_mtime_ns), follow_symlinks=False)


def pin_ctimes_script(root: Path, when: int = FAKE_TIME) -> str:
    """debugfs commands that set every inode's ctime to ``when``.

    ``pin_atimes`` (``os.utime``) moves each ctime to *now*, and mkfs.ext4 -d copies ctimes, so without
    this two builds of one tree differed by the second they ran in. ctime cannot be set from user space;
    debugfs writes it in the finished filesystem. Names holding a double quote cannot be quoted for
    debugfs and keep their ctime (none in our trees).
    """
    lines = []
    for dirpath, dirnames, filenames in os.walk(root):
        base = Path(dirpath).relative_to(root)
        for name in ["", *dirnames, *filenames]:
            rel = (base / name).as_posix() if name else base.as_posix()
            path = "/" if rel == "." else "/" + rel
            if '"' in path or "\n" in path:
                continue
            lines.append(f'sif "{path}" ctime @{when}')
            lines.append(f'sif "{path}" ctime_extra 0')
    return "\n".join(lines) + "\n"


def sfdisk_script(ids: DiskIds, fs_bytes: int) -> str:
    return (
        "label: gpt\n"
        f"label-id: {ids.label_id}\n"
        "unit: sectors\n"
        "first-lba: 2048\n"
        f'start=2048, size={fs_bytes // 512}, type={LINUX_FS_TYPE}, uuid={ids.part_uuid}, name="root"\n'
    )


def make_qcow2(tree: Path, key: str, work: Path, out: Path, log: Path) -> dict[str, int | str]:
    """Write ``out`` (qcow2) from ``tree``; return its facts. ``work`` holds the raw intermediates."""
    ids = disk_ids(key)
    tree_bytes, tree_inodes = tree_usage(tree)
    fs_bytes = fs_size_for(tree_bytes, tree_inodes)
    disk_bytes = MIB + fs_bytes + MIB  # GPT in front, backup GPT behind
    fs_img = work / "root.ext4"
    raw = work / "disk.raw"
    pin_atimes(tree)
    env = {"E2FSPROGS_FAKE_TIME": str(FAKE_TIME), "MKE2FS_DEVICE_SECTSIZE": "512"}
    run(
        [
            need("mkfs.ext4", "e2fsprogs"), "-q", "-F", "-b", "4096", "-I", "256", "-m", "1", "-L", "root",
            "-U", ids.fs_uuid, "-E", f"hash_seed={ids.fs_uuid},root_owner=0:0,lazy_itable_init=0",
            "-N", str(max(tree_inodes * 2, 65536)), "-d", str(tree), str(fs_img), f"{fs_bytes // 1024}k",
        ],
        env=env,
        log=log,
    )  # fmt: skip
    script = work / "pin-ctimes.debugfs"
    script.write_text(pin_ctimes_script(tree))
    run([need("debugfs", "e2fsprogs"), "-w", "-f", str(script), str(fs_img)], env=env, log=log)
    script.unlink()
    run([need("e2fsck", "e2fsprogs"), "-fn", str(fs_img)], env=env, log=log)
    with raw.open("wb") as fh:
        fh.truncate(disk_bytes)
    run(
        [need("sfdisk", "fdisk"), "--no-reread", "--no-tell-kernel", "-q", str(raw)],
        input_bytes=sfdisk_script(ids, fs_bytes).encode(),
        log=log,
    )
    run(
        [
            need("dd", "coreutils"),
            f"if={fs_img}",
            f"of={raw}",
            "bs=1M",
            "seek=1",
            "conv=notrunc,sparse",
            "status=none",
        ],
        log=log,
    )
    fs_img.unlink()
    qemu_img = need("qemu-img", "qemu-utils")
    run([qemu_img, "convert", "-c", "-f", "raw", "-O", "qcow2", str(raw), str(out)], log=log)
    raw.unlink()
    info = json.loads(run([qemu_img, "info", "--output=json", str(out)]))
    if info.get("backing-filename") or info.get("format") != "qcow2":
        raise BackendError(
            f"{out}: qemu-img made a {info.get('format')} with backing {info.get('backing-filename')}"
        )
    return {
        "tree_bytes": tree_bytes,
        "tree_inodes": tree_inodes,
        "fs_bytes": fs_bytes,
        "virtual_size": int(info["virtual-size"]),
        "allocated_bytes": int(info.get("actual-size", 0)),
        "fs_uuid": ids.fs_uuid,
        "part_uuid": ids.part_uuid,
        "label_id": ids.label_id,
    }
