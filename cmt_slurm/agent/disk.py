"""Inspect, write and grow: the steps that touch the target disk, in a fixed order.

``check_image`` refuses anything but a self-contained qcow2/raw; ``write_image`` wipes signatures and then
writes with explicit formats; ``grow_root`` re-reads the partition table, fixes the GPT backup header and
grows the last partition and its filesystem. Every command goes through a ``CommandRunner``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import BackendError, BadInput
from ..runner import CommandRunner

#: Formats the agent writes; anything else is refused before the disk is touched.
ACCEPTED_FORMATS = ("qcow2", "raw")


@dataclass(frozen=True)
class ImageInfo:
    format: str
    virtual_size: int
    actual_size: int | None = None


def parse_qemu_img_info(text: str, source: str) -> ImageInfo:
    """Validate ``qemu-img info --output=json``: a qcow2 or raw with no backing or external data file.

    :raises BadInput: unknown format, backing file, external data file, or unreadable output.
    """
    try:
        info: dict[str, Any] = json.loads(text)
        fmt = str(info["format"])
        virtual = int(info["virtual-size"])
    except (ValueError, KeyError, TypeError) as exc:
        raise BadInput(f"{source}: qemu-img info gave unreadable output ({exc})") from None
    if fmt not in ACCEPTED_FORMATS:
        raise BadInput(
            f"{source}: image format {fmt!r} is not accepted",
            hint=f"convert it to qcow2 (accepted: {', '.join(ACCEPTED_FORMATS)})",
        )
    backing = info.get("backing-filename") or info.get("full-backing-filename")
    if backing:
        raise BadInput(
            f"{source}: qcow2 has a backing file ({backing}); refusing a partial image",
            hint="flatten it: qemu-img convert -O qcow2 IMAGE FLAT.qcow2",
        )
    specific = (info.get("format-specific") or {}).get("data") or {}
    if specific.get("data-file"):
        raise BadInput(
            f"{source}: qcow2 has an external data file ({specific['data-file']}); refusing it",
            hint="convert it into a self-contained qcow2: qemu-img convert -O qcow2 IMAGE OUT.qcow2",
        )
    actual = info.get("actual-size")
    return ImageInfo(fmt, virtual, int(actual) if actual is not None else None)


def check_image(runner: CommandRunner, source: str, declared_format: str | None = None) -> ImageInfo:
    """``qemu-img info`` on a file or URL; the format is probed, then must equal the declared one."""
    result = runner.run(["qemu-img", "info", "--output=json", source], timeout=120)
    info = parse_qemu_img_info(result.stdout, source)
    if declared_format and declared_format != info.format:
        raise BadInput(
            f"{source}: declared format {declared_format} but the file is {info.format}",
            hint="fix the catalogue manifest's format",
        )
    return info


def disk_size(runner: CommandRunner, disk: str) -> int:
    result = runner.run(["blockdev", "--getsize64", disk], timeout=30)
    try:
        return int(result.stdout.strip())
    except ValueError:
        raise BackendError(f"blockdev --getsize64 {disk}: unreadable size {result.stdout!r}") from None


_PROGRESS = re.compile(r"\((\d+(?:\.\d+)?)/100%\)")


def parse_progress(line: str) -> float | None:
    """qemu-img ``-p`` prints ``    (42.00/100%)``; returns the fraction done."""
    match = _PROGRESS.search(line)
    return float(match.group(1)) / 100.0 if match else None


def write_image(
    runner: CommandRunner,
    source: str,
    disk: str,
    image_format: str,
    on_fraction: Callable[[float], None] | None = None,
) -> None:
    """Wipe the disk's signatures, then write the image's whole virtual size as raw.

    ``-n``: the disk exists (never create); ``-m 1``: QEMU 7.2's curl driver hangs with parallel
    requests; formats explicit so a raw file is never probed as something else.
    """
    runner.run(["wipefs", "-a", disk], timeout=60)

    def progress(line: str) -> None:
        fraction = parse_progress(line)
        if fraction is not None and on_fraction is not None:
            on_fraction(fraction)

    argv = ["qemu-img", "convert", "-p", "-n", "-m", "1", "-f", image_format, "-O", "raw", source, disk]
    runner.run(argv, timeout=None, on_output=progress)
    runner.run(["sync"], timeout=120)


@dataclass(frozen=True)
class Partition:
    node: str
    number: int
    start: int
    size: int


@dataclass(frozen=True)
class PartitionTable:
    label: str
    partitions: tuple[Partition, ...]

    def root(self) -> Partition:
        """The partition to grow: the last one on the disk (growpart can only grow into free space)."""
        if not self.partitions:
            raise BadInput("the written image has no partitions", hint="build images with a partition table")
        return max(self.partitions, key=lambda p: p.start)


def partition_number(node: str) -> int:
    match = re.search(r"(\d+)$", node)
    if not match:
        raise BadInput(f"{node}: cannot tell the partition number")
    return int(match.group(1))


def parse_sfdisk_json(text: str, disk: str) -> PartitionTable:
    try:
        table = json.loads(text)["partitiontable"]
        parts = tuple(
            Partition(str(p["node"]), partition_number(str(p["node"])), int(p["start"]), int(p["size"]))
            for p in table.get("partitions", [])
        )
        return PartitionTable(str(table.get("label", "")), parts)
    except (ValueError, KeyError, TypeError) as exc:
        raise BadInput(f"{disk}: unreadable partition table from sfdisk ({exc})") from None


@dataclass(frozen=True)
class GrowResult:
    root_partition: str
    fstype: str
    grown: bool


def grow_root(runner: CommandRunner, disk: str, mountpoint: Path) -> GrowResult:
    """Re-read partitions, fix the GPT backup header, grow the last partition and its filesystem."""
    runner.run(["blockdev", "--rereadpt", disk], timeout=60)
    table = parse_sfdisk_json(runner.run(["sfdisk", "--json", disk], timeout=60).stdout, disk)
    if table.label == "gpt":
        # The image's backup GPT header sits at the end of the image, not of the disk.
        runner.run(["sgdisk", "-e", disk], timeout=60)
        runner.run(["blockdev", "--rereadpt", disk], timeout=60)
    root = table.root()
    grow = runner.run(["growpart", disk, str(root.number)], check=False, timeout=120)
    grown = grow.ok
    if not grow.ok and "NOCHANGE" not in grow.stdout + grow.stderr:
        raise BackendError(
            f"growpart {disk} {root.number} failed: {grow.last_error_line()}",
            hint="the partition must be the last one on the disk",
        )
    fstype = runner.run(["blkid", "-o", "value", "-s", "TYPE", root.node], timeout=30).stdout.strip()
    if fstype in ("ext2", "ext3", "ext4"):
        fsck = runner.run(["e2fsck", "-f", "-y", root.node], check=False, timeout=600)
        if fsck.returncode >= 4:  # 1 and 2 mean "errors corrected"
            raise BackendError(f"e2fsck {root.node} found uncorrectable errors: {fsck.last_error_line()}")
        runner.run(["resize2fs", root.node], timeout=600)
    elif fstype == "xfs":
        mountpoint.mkdir(parents=True, exist_ok=True)
        runner.run(["mount", "-t", "xfs", root.node, str(mountpoint)], timeout=120)
        try:
            runner.run(["xfs_growfs", str(mountpoint)], timeout=600)
        finally:
            runner.run(["umount", str(mountpoint)], timeout=120)
    else:
        raise BadInput(
            f"{root.node}: root filesystem {fstype or 'unknown'} cannot be grown",
            hint="images must use ext4 or xfs on their last partition",
        )
    return GrowResult(root.node, fstype, grown)


def mount_root(runner: CommandRunner, partition: str, fstype: str, mountpoint: Path) -> None:
    mountpoint.mkdir(parents=True, exist_ok=True)
    runner.run(["mount", "-t", fstype, partition, str(mountpoint)], timeout=120)


def umount(runner: CommandRunner, mountpoint: Path) -> None:
    runner.run(["umount", str(mountpoint)], timeout=120)


def fs_uuid(runner: CommandRunner, partition: str) -> str:
    return runner.run(["blkid", "-o", "value", "-s", "UUID", partition], timeout=30).stdout.strip()
