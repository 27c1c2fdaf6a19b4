import json
from pathlib import Path

import pytest

from cmt_slurm.agent import disk
from cmt_slurm.errors import BackendError, BadInput
from cmt_slurm.runner import CommandFailed, FakeRunner

QCOW2_INFO = json.dumps(
    {"format": "qcow2", "virtual-size": 2147483648, "actual-size": 120000000, "format-specific": {"data": {}}}
)
SFDISK_GPT = json.dumps(
    {
        "partitiontable": {
            "label": "gpt",
            "partitions": [
                {"node": "/dev/vda1", "start": 2048, "size": 2048},
                {"node": "/dev/vda2", "start": 4096, "size": 1000000},
            ],
        }
    }
)


def test_backing_file_is_refused() -> None:
    info = json.dumps({"format": "qcow2", "virtual-size": 1, "backing-filename": "base.qcow2"})
    with pytest.raises(BadInput, match="backing file"):
        disk.parse_qemu_img_info(info, "img")


def test_external_data_file_is_refused() -> None:
    info = json.dumps(
        {
            "format": "qcow2",
            "virtual-size": 1,
            "format-specific": {"type": "qcow2", "data": {"data-file": "d"}},
        }
    )
    with pytest.raises(BadInput, match="external data file"):
        disk.parse_qemu_img_info(info, "img")


def test_unknown_format_and_declared_mismatch_are_refused() -> None:
    with pytest.raises(BadInput, match="'vmdk' is not accepted"):
        disk.parse_qemu_img_info(json.dumps({"format": "vmdk", "virtual-size": 1}), "img")
    runner = FakeRunner().on("qemu-img", "info", stdout=json.dumps({"format": "raw", "virtual-size": 5}))
    with pytest.raises(BadInput, match="declared format qcow2"):
        disk.check_image(runner, "img", "qcow2")


def test_write_wipes_then_converts_with_explicit_formats() -> None:
    runner = FakeRunner().on("qemu-img", "convert", output_lines=("    (0.00/100%)", "    (50.00/100%)"))
    seen: list[float] = []
    disk.write_image(runner, "/run/cmt/image", "/dev/vda", "qcow2", seen.append)
    assert runner.argvs == [
        ["wipefs", "-a", "/dev/vda"],
        [
            "qemu-img", "convert", "-p", "-n", "-m", "1", "-f", "qcow2", "-O", "raw",
            "/run/cmt/image", "/dev/vda",
        ],
        ["sync"],
    ]  # fmt: skip
    assert seen == [0.0, 0.5]


def test_write_failure_propagates() -> None:
    runner = FakeRunner().on("qemu-img", "convert", returncode=1, stderr="qemu-img: error while writing")
    with pytest.raises(CommandFailed, match="error while writing"):
        disk.write_image(runner, "src", "/dev/vda", "qcow2")


def _grow_runner(fstype: str = "ext4") -> FakeRunner:
    return (
        FakeRunner()
        .on("sfdisk", "--json", stdout=SFDISK_GPT)
        .on("blkid", "-o", "value", "-s", "TYPE", stdout=f"{fstype}\n")
        .on("growpart", stdout="CHANGED: partition=2 start=4096 old: size=1000000 end=1004096 new: ...")
    )


def test_grow_order_gpt_ext4(tmp_path: Path) -> None:
    runner = _grow_runner()
    result = disk.grow_root(runner, "/dev/vda", tmp_path)
    assert runner.argvs == [
        ["blockdev", "--rereadpt", "/dev/vda"],
        ["sfdisk", "--json", "/dev/vda"],
        ["sgdisk", "-e", "/dev/vda"],
        ["blockdev", "--rereadpt", "/dev/vda"],
        ["growpart", "/dev/vda", "2"],
        ["blkid", "-o", "value", "-s", "TYPE", "/dev/vda2"],
        ["e2fsck", "-f", "-y", "/dev/vda2"],
        ["resize2fs", "/dev/vda2"],
    ]
    assert result == disk.GrowResult("/dev/vda2", "ext4", True)


def test_grow_nochange_is_fine_and_mbr_skips_sgdisk(tmp_path: Path) -> None:
    table = json.loads(SFDISK_GPT)
    table["partitiontable"]["label"] = "dos"
    runner = (
        _grow_runner()
        .on("sfdisk", "--json", stdout=json.dumps(table))
        .on("growpart", returncode=1, stdout="NOCHANGE: partition 2 is size 1000000. it cannot be grown")
    )
    result = disk.grow_root(runner, "/dev/vda", tmp_path)
    assert "sgdisk" not in runner.names()
    assert result.grown is False


def test_grow_xfs_mounts_and_grows(tmp_path: Path) -> None:
    runner = _grow_runner("xfs")
    disk.grow_root(runner, "/dev/vda", tmp_path / "mnt")
    assert runner.names()[-3:] == ["mount", "xfs_growfs", "umount"]


def test_grow_failures(tmp_path: Path) -> None:
    with pytest.raises(BackendError, match="growpart"):
        disk.grow_root(_grow_runner().on("growpart", returncode=2, stderr="failed"), "/dev/vda", tmp_path)
    with pytest.raises(BackendError, match="uncorrectable"):
        disk.grow_root(_grow_runner().on("e2fsck", returncode=8), "/dev/vda", tmp_path)
    with pytest.raises(BadInput, match="cannot be grown"):
        disk.grow_root(_grow_runner("btrfs"), "/dev/vda", tmp_path)


def test_partition_numbers() -> None:
    assert disk.partition_number("/dev/nvme0n1p3") == 3
    assert disk.partition_number("/dev/vda12") == 12
    assert disk.parse_progress("  (12.50/100%)") == 0.125
