"""Pure parts of the image and live-env builders: cpio, module closure, ldd parsing, manifests, disk ids."""

from __future__ import annotations

import io
import stat
import tomllib
from datetime import date
from pathlib import Path

import pytest

from cmt_slurm.errors import BadInput, NotFound
from cmt_slurm.lab.directboot import qemu_argv
from cmt_slurm.lab.imagebuild import cpio, disk, kernel
from cmt_slurm.lab.imagebuild.cache import KeyBuilder, build_entry, read_entry
from cmt_slurm.lab.imagebuild.closure import parse_ldd, usr_path
from cmt_slurm.lab.imagebuild.manifest import render_manifest
from cmt_slurm.lab.imagebuild.recipe import available, load_recipe

REPO = Path(__file__).resolve().parents[2]


def read_newc(data: bytes) -> list[tuple[str, int, bytes, int]]:
    """A minimal newc reader: (name, mode, data, mtime) per member, trailer excluded."""
    out = []
    pos = 0
    while True:
        assert data[pos : pos + 6] == b"070701"
        fields = [int(data[pos + 6 + 8 * i : pos + 14 + 8 * i], 16) for i in range(13)]
        namesize, filesize, mode, mtime = fields[11], fields[6], fields[1], fields[5]
        pos += 110
        name = data[pos : pos + namesize - 1].decode()
        pos += namesize
        pos += (4 - pos % 4) % 4
        body = data[pos : pos + filesize]
        pos += filesize
        pos += (4 - pos % 4) % 4
        if name == "TRAILER!!!":
            return out
        out.append((name, mode, body, mtime))


def test_cpio_adds_parents_sorts_and_is_deterministic() -> None:
    entries = [
        cpio.CpioEntry.file("usr/bin/tool", b"abc", 0o755),
        cpio.CpioEntry.symlink("bin", "usr/bin"),
        cpio.CpioEntry.chardev("dev/console", 5, 1),
    ]
    a, b = io.BytesIO(), io.BytesIO()
    cpio.write_newc(entries, a)
    cpio.write_newc(list(reversed(entries)), b)
    assert a.getvalue() == b.getvalue()
    members = read_newc(a.getvalue())
    names = [m[0] for m in members]
    assert names == ["bin", "dev", "dev/console", "usr", "usr/bin", "usr/bin/tool"]
    by_name = {m[0]: m for m in members}
    assert stat.S_ISDIR(by_name["usr"][1])
    assert by_name["usr/bin/tool"][2] == b"abc"
    assert stat.S_IMODE(by_name["usr/bin/tool"][1]) == 0o755
    assert by_name["bin"][2] == b"usr/bin"
    assert stat.S_ISCHR(by_name["dev/console"][1])
    assert {m[3] for m in members} == {0}


@pytest.mark.parametrize("bad", ["/etc/passwd", "../x", "a/../../b", ""])
def test_cpio_refuses_paths_outside_the_archive(bad: str) -> None:
    with pytest.raises(BadInput):
        cpio.write_newc([cpio.CpioEntry.file(bad, b"")], io.BytesIO())


def test_cpio_from_tree_keeps_modes_and_links(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x").write_text("hi")
    (tmp_path / "d" / "x").chmod(0o700)
    (tmp_path / "l").symlink_to("d/x")
    entries = {e.path: e for e in cpio.entries_from_tree(tmp_path, "root")}
    assert entries["root/d/x"].data == b"hi" and stat.S_IMODE(entries["root/d/x"].mode) == 0o700
    assert stat.S_ISLNK(entries["root/l"].mode) and entries["root/l"].data == b"d/x"


def test_module_names_and_modinfo_depends() -> None:
    assert kernel.module_name("kernel/fs/ext4/ext4.ko") == "ext4"
    assert kernel.module_name("kernel/arch/x86/crypto/crc32c-intel.ko.xz") == "crc32c_intel"
    blob = b"\x00junk\x00license=GPL\x00depends=jbd2,mbcache,crc16\x00name=ext4\x00"
    assert kernel.modinfo_depends(blob) == ("jbd2", "mbcache", "crc16")
    assert kernel.modinfo_depends(b"\x00depends=\x00name=crc16\x00") == ()
    assert kernel.modinfo_depends(b"no modinfo here") == ()


DEPS = {
    "ext4": ("jbd2", "mbcache", "crc16"),
    "jbd2": (),
    "mbcache": (),
    "crc16": (),
    "virtio_blk": ("virtio", "virtio_ring"),
    "virtio_pci": ("virtio", "virtio_ring", "virtio_pci_modern_dev"),
    "virtio": (),
    "virtio_ring": (),
    "virtio_pci_modern_dev": (),
}


def test_closure_order_puts_dependencies_first_once() -> None:
    order = kernel.closure_order(["virtio_pci", "virtio_blk", "ext4"], DEPS)
    assert order == [
        "virtio", "virtio_ring", "virtio_pci_modern_dev", "virtio_pci", "virtio_blk",
        "jbd2", "mbcache", "crc16", "ext4",
    ]  # fmt: skip


def test_closure_names_the_missing_module_and_who_needs_it() -> None:
    with pytest.raises(BadInput, match=r"nope \(needed by ext4\)"):
        kernel.closure_order(["ext4"], {**DEPS, "ext4": ("nope",)})


def test_modules_dep_lists_full_dependency_paths() -> None:
    mods = kernel.ModuleSet("6.1", {n: f"kernel/{n}.ko" for n in DEPS}, dict(DEPS))
    text = kernel.modules_dep_text(mods, ["ext4", "jbd2"])
    assert "kernel/ext4.ko: kernel/crc16.ko kernel/mbcache.ko kernel/jbd2.ko\n" in text
    assert "kernel/jbd2.ko:\n" in text


def test_parse_ldd_and_merged_usr() -> None:
    out = (
        "\tlinux-vdso.so.1 (0x00007ffc)\n"
        "\tlibz.so.1 => /lib/x86_64-linux-gnu/libz.so.1 (0x00007f01)\n"
        "\t/lib64/ld-linux-x86-64.so.2 (0x00007f02)\n"
    )
    assert parse_ldd(out) == ["/lib/x86_64-linux-gnu/libz.so.1", "/lib64/ld-linux-x86-64.so.2"]
    with pytest.raises(Exception, match="missing"):
        parse_ldd("\tlibfoo.so.1 => not found\n")
    assert usr_path("/lib/x/libz.so") == "/usr/lib/x/libz.so"
    assert usr_path("/sbin/e2fsck") == "/usr/sbin/e2fsck"
    assert usr_path("/usr/bin/python3") == "/usr/bin/python3"
    assert usr_path("/etc/passwd") == "/etc/passwd"


def test_manifest_round_trips_through_toml() -> None:
    fields = {
        "size": 123, "name": "debian12-abc", "os": "debian12", "os_name": 'Debian "GNU"/Linux',
        "os_version": "12", "glibc": "2.36", "arch": "x86_64", "format": "qcow2", "url": "debian12-abc.qcow2",
        "sha256": "0" * 64, "built": date(2026, 12, 1), "kernel_args": "root=UUID=x rw", "features": ["gpu"],
    }  # fmt: skip
    text = render_manifest(fields, "generated\nby a test")
    assert text.startswith("# generated\n# by a test\nname = ")
    assert tomllib.loads(text) == fields


def test_disk_ids_are_stable_and_distinct() -> None:
    a, b = disk.disk_ids("key1"), disk.disk_ids("key2")
    assert a == disk.disk_ids("key1")
    assert len({a.fs_uuid, a.part_uuid, a.label_id, b.fs_uuid}) == 4
    script = disk.sfdisk_script(a, 64 << 20)
    assert f"label-id: {a.label_id}" in script and f"uuid={a.part_uuid}" in script
    assert "start=2048, size=131072," in script
    assert disk.fs_size_for(100 << 20, 1000) % disk.MIB == 0
    assert disk.fs_size_for(100 << 20, 1000) > 100 << 20


def test_key_builder_ignores_insertion_order() -> None:
    k1, k2 = KeyBuilder(), KeyBuilder()
    k1.add("a", "1")
    k1.add("b", "2")
    k2.add("b", "2")
    k2.add("a", "1")
    assert k1.digest() == k2.digest()
    k2.add("a", "changed")
    assert k1.digest() != k2.digest()


def test_shipped_recipes_load() -> None:
    assert {"debian12", "debian13"} <= set(available(REPO))
    r13 = load_recipe(REPO, "debian13")
    assert r13.os == "debian13" and r13.apt_preferences == "slurm-22.05.pref"
    assert "slurmd" in r13.packages and "linux-image-amd64" in r13.packages
    assert any("bookworm" in m for m in r13.mirrors)
    assert "console=ttyS0" in r13.kernel_args
    with pytest.raises(NotFound, match="no image recipe 'nope'"):
        load_recipe(REPO, "nope")


def test_recipe_problems_are_all_named(tmp_path: Path) -> None:
    (tmp_path / "images/recipes/bad").mkdir(parents=True)
    (tmp_path / "images/recipes/shared").mkdir(parents=True)
    (tmp_path / "images/recipes/shared/packages.txt").write_text("systemd\n")
    (tmp_path / "images/recipes/bad/recipe.toml").write_text(
        'os = ""\nmirrors = []\napt_preferences = "x.pref"\n'
    )
    with pytest.raises(BadInput) as err:
        load_recipe(tmp_path, "bad")
    for key in ("os:", "os_name:", "suite:", "mirrors:", "apt_preferences:"):
        assert key in err.value.message


def test_qemu_argv_is_restricted_and_never_writes_the_image() -> None:
    argv = qemu_argv(Path("/k"), Path("/i"), "console=ttyS0", disk=Path("/img.qcow2"))
    joined = " ".join(argv)
    assert "restrict=on" in joined
    assert "snapshot=on" in joined and "format=qcow2" in joined
    assert argv[argv.index("-accel") + 1] == "tcg"


def test_cache_builds_once_then_reuses(tmp_path: Path) -> None:
    calls: list[Path] = []

    def build(out: Path) -> dict[str, object]:
        calls.append(out)
        (out / "thing").write_text("x")
        return {"size": 1}

    first = build_entry("kind", "k1", build, root=tmp_path)
    again = build_entry("kind", "k1", build, root=tmp_path)
    assert first.built_now and not again.built_now
    assert len(calls) == 1 and again.path == tmp_path / "kind" / "k1"
    assert again.info["size"] == 1 and again.info["key"] == "k1"
    forced = build_entry("kind", "k1", build, root=tmp_path, force=True)
    assert forced.built_now and len(calls) == 2


def test_cache_rebuilds_a_partial_entry_and_keeps_no_half_built_one(tmp_path: Path) -> None:
    partial = tmp_path / "kind" / "k2"
    partial.mkdir(parents=True)
    (partial / "thing").write_text("left by a crash, no entry.json")

    def broken(out: Path) -> dict[str, object]:
        (out / "half").write_text("x")
        raise RuntimeError("builder died")

    with pytest.raises(RuntimeError):
        build_entry("kind", "k2", broken, root=tmp_path)
    assert not list((tmp_path / "kind").glob(".tmp-*"))
    assert read_entry(partial, "k2") is None

    entry = build_entry("kind", "k2", lambda out: {"ok": True}, root=tmp_path)
    assert entry.built_now and entry.info["ok"] is True
    assert not (entry.path / "thing").exists()


def test_pin_ctimes_script_covers_every_inode_and_quotes_paths(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "a b").write_text("x")
    (tmp_path / 'odd"name').write_text("x")
    lines = disk.pin_ctimes_script(tmp_path, when=42).splitlines()
    assert 'sif "/" ctime @42' in lines
    assert 'sif "/etc" ctime @42' in lines
    assert 'sif "/etc/a b" ctime @42' in lines and 'sif "/etc/a b" ctime_extra 0' in lines
    assert not any("odd" in line for line in lines)  # cannot be quoted for debugfs: left alone
