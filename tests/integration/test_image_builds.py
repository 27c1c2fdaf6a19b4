"""Real builds (or cache hits) of the live env and the Debian node images, checked from the outside.

The first run on a machine builds (~2 min live env, ~2-3 min per image, needs root, mmdebstrap and the
network to the Debian mirror); later runs reuse ``${CMT_CACHE:-~/.cache/cmt-slurm}``.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import subprocess
import time
import tomllib
import uuid
from pathlib import Path

import pytest

from cmt_slurm.catalogue import load_manifest
from cmt_slurm.errors import NotFound
from cmt_slurm.lab import images
from cmt_slurm.lab.imagebuild import disk
from tests.conftest import need_binary, need_root
from tests.unit.test_imagebuild import read_newc

RECIPES = {"debian12": ("12", "2.36"), "debian13": ("13", "2.41")}


@pytest.fixture(scope="module")
def live_env() -> images.LiveEnv:
    need_binary("apt-get", "busybox", "qemu-img", "zstd", "kexec", "growpart", "sgdisk")
    return images.ensure_live_env()


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_live_env_is_kernel_plus_base_and_overlay(live_env: images.LiveEnv) -> None:
    assert live_env.kernel.is_file() and live_env.initrd.is_file()
    base, overlay = live_env.base_initrd.read_bytes(), live_env.overlay.read_bytes()
    assert live_env.initrd.read_bytes() == base + overlay
    assert sha256(live_env.initrd) == live_env.sha256s["initrd"]
    assert sha256(live_env.kernel) == live_env.sha256s["vmlinuz"]
    assert live_env.sizes["initrd"] == len(base) + len(overlay)
    # The directory is what the boot server's live_dir expects.
    assert {p.name for p in live_env.directory.iterdir()} >= {"vmlinuz", "initrd.img"}


def test_live_base_holds_the_tools_the_agent_drives(live_env: images.LiveEnv) -> None:
    raw = subprocess.run(["zstd", "-dc", str(live_env.base_initrd)], capture_output=True, check=True).stdout
    members = {name: (mode, data) for name, mode, data, _ in read_newc(raw)}
    for path in (
        "init", "etc/udhcpc.script", "usr/bin/busybox", "usr/bin/python3.11", "usr/bin/qemu-img",
        "usr/lib/x86_64-linux-gnu/qemu/block-curl.so", "usr/sbin/kexec", "usr/sbin/e2fsck",
        "usr/sbin/resize2fs", "usr/sbin/xfs_growfs", "usr/bin/growpart", "usr/sbin/sfdisk", "usr/bin/partx",
        "usr/bin/flock", "usr/sbin/wipefs", "usr/sbin/sgdisk", "usr/lib/python3.11/json/__init__.pyc",
        "usr/lib/python3.11/urllib/request.pyc", "dev/console",
    ):  # fmt: skip
        assert path in members, path
    order = members["usr/lib/modules/load.order"][1].decode().split()
    names = [p.rsplit("/", 1)[-1] for p in order]
    assert names.index("virtio_ring.ko") < names.index("virtio_net.ko")
    assert names.index("jbd2.ko") < names.index("ext4.ko")
    assert f"usr/lib/modules/{live_env.kernel_release}/modules.dep" in members
    # Sourceless stdlib: no .py files, and no test suite.
    assert not [n for n in members if n.startswith("usr/lib/python3.11/") and n.endswith(".py")]
    assert not [n for n in members if n.startswith("usr/lib/python3.11/test/")]


def test_overlay_carries_the_agent_and_no_head_node_code(live_env: images.LiveEnv) -> None:
    names = [m[0] for m in read_newc(gzip.decompress(live_env.overlay.read_bytes()))]
    prefix = "usr/lib/cmt/python/cmt_slurm/"
    assert prefix + "__init__.py" in names and prefix + "errors.py" in names
    assert prefix + "agent/cli.py" in names
    for head_only in ("server/", "store/", "cli/", "lab/"):
        assert not [n for n in names if n.startswith(prefix + head_only)], head_only


def test_live_env_second_call_is_a_cache_hit(live_env: images.LiveEnv) -> None:
    again = images.ensure_live_env()
    assert not again.built_now
    # The overlay follows the working tree's code (others may edit it meanwhile); the base must not move.
    assert again.base_initrd == live_env.base_initrd and again.kernel.samefile(live_env.kernel)
    assert again.sha256s["base_initrd"] == live_env.sha256s["base_initrd"]


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("catalogue")


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_image_builds_to_a_self_contained_qcow2_with_a_loadable_manifest(
    recipe: str, catalogue: Path
) -> None:
    need_root("building node images (mmdebstrap --mode=root)")
    need_binary("mmdebstrap", "qemu-img", "mkfs.ext4", "sfdisk")
    image = images.ensure_image(recipe, catalogue)
    version, glibc = RECIPES[recipe]

    info = json.loads(
        subprocess.run(
            ["qemu-img", "info", "--output=json", str(image.path)], capture_output=True, check=True, text=True
        ).stdout
    )
    assert info["format"] == "qcow2"
    assert "backing-filename" not in info and "data-file" not in info.get("format-specific", {}).get(
        "data", {}
    )
    assert image.size == image.path.stat().st_size
    assert image.sha256 == sha256(image.path)
    assert image.glibc == glibc and image.os_version == version

    assert image.manifest_path is not None
    loaded = load_manifest(image.manifest_path)
    assert loaded.name == image.name and loaded.os == recipe
    assert str(loaded.glibc) == glibc and loaded.sha256 == image.sha256 and loaded.size == image.size
    assert loaded.format == "qcow2" and loaded.arch == "x86_64"
    assert (catalogue / tomllib.loads(image.manifest_path.read_text())["url"]).samefile(image.path)
    assert "root=UUID=" in image.kernel_args and "console=ttyS0" in image.kernel_args
    assert "console=ttyS0" in loaded.kernel_args and "root=" not in loaded.kernel_args

    # The BLS entry the reimager kexecs from names the kernel and initrd that were copied out.
    bls = (image.path.parent / "bls.conf").read_text()
    assert f"linux /boot/vmlinuz-{image.kernel_release}" in bls
    assert f"initrd /boot/initrd.img-{image.kernel_release}" in bls
    assert image.kernel.stat().st_size > 1 << 20 and image.initrd.stat().st_size > 1 << 20


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_image_disk_is_gpt_with_one_ext4_root_at_1mib(recipe: str, tmp_path: Path) -> None:
    need_root("building node images")
    image = images.ensure_image(recipe)
    head = tmp_path / "head.raw"
    subprocess.run(
        ["qemu-img", "dd", "-f", "qcow2", "-O", "raw", "bs=1M", "count=3", f"if={image.path}", f"of={head}"],
        check=True, capture_output=True,
    )  # fmt: skip
    data = head.read_bytes()
    # GPT header at LBA 1, entries at LBA 2 (GUIDs are stored mixed-endian: uuid bytes_le).
    assert data[512:520] == b"EFI PART"
    assert str(uuid.UUID(bytes_le=data[512 + 56 : 512 + 72])) == image.info["label_id"]
    entry = data[1024 : 1024 + 128]
    assert str(uuid.UUID(bytes_le=entry[0:16])).upper() == "0FC63DAF-8483-4772-8E79-3D69D8477DE4"
    assert str(uuid.UUID(bytes_le=entry[16:32])) == image.info["part_uuid"]
    assert int.from_bytes(entry[32:40], "little") == 2048
    assert data[1024 + 128 : 1024 + 256] == b"\0" * 128, "exactly one partition"
    # ext4 magic 0xEF53 at offset 1080 of the partition; the UUID the BLS entry names at offset 1128.
    data = data[1 << 20 :]
    assert data[1080:1082] == b"\x53\xef"
    assert str(image.info["fs_uuid"]).replace("-", "") == data[1128:1144].hex()
    assert f"root=UUID={image.info['fs_uuid']}" in image.kernel_args


def test_second_image_request_is_a_cache_hit() -> None:
    need_root("building node images")
    first = images.ensure_image("debian12")
    again = images.ensure_image("debian12")
    assert not again.built_now and again.sha256 == first.sha256
    assert images.cached_image("debian12") is not None


def test_unknown_recipe_is_a_clear_error() -> None:
    with pytest.raises(NotFound, match="no image recipe 'plan9'"):
        images.ensure_image("plan9")


def test_same_tree_and_key_give_a_byte_identical_qcow2(tmp_path: Path) -> None:
    need_binary("mkfs.ext4", "sfdisk", "qemu-img", "e2fsck")
    tree = tmp_path / "tree"
    (tree / "etc").mkdir(parents=True)
    (tree / "etc" / "os-release").write_text("ID=test\n")
    (tree / "bin").symlink_to("usr/bin")
    digests = []
    for run in ("a", "b"):
        work = tmp_path / run
        work.mkdir()
        facts = disk.make_qcow2(tree, "key", work, work / "i.qcow2", work / "log")
        digests.append(sha256(work / "i.qcow2"))
        (tree / "etc" / "os-release").read_text()  # reading moves atimes: must not matter
        time.sleep(1.1)  # the second build runs in another second: its clock must not reach the bytes
    assert digests[0] == digests[1]
    assert facts["fs_uuid"] == disk.disk_ids("key").fs_uuid
