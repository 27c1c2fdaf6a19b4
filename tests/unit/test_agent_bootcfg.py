from pathlib import Path

import pytest

from cmt_slurm.agent.bootcfg import (
    choose_bls,
    choose_grub,
    expand_grub_vars,
    find_boot_config,
    merge_cmdline,
    parse_bls_entry,
    parse_grub_cfg,
)
from cmt_slurm.errors import NotFound

# As images/recipes/shared/customize-hook.sh writes it.
DEBIAN_BLS = """\
title Debian GNU/Linux 12 (bookworm)
version 6.1.0-27-amd64
linux /boot/vmlinuz-6.1.0-27-amd64
initrd /boot/initrd.img-6.1.0-27-amd64
options root=UUID=1111-2222 rw console=ttyS0 quiet
"""

# EL8-style: options come from grubenv's kernelopts.
EL_BLS = """\
title Rocky Linux (4.18.0-513.el8.x86_64) 8.9
version 4.18.0-513.el8.x86_64
linux /vmlinuz-4.18.0-513.el8.x86_64
initrd $tuned_initrd /initramfs-4.18.0-513.el8.x86_64.img
options $kernelopts $tuned_params
id rocky-20240101-4.18.0-513.el8.x86_64
"""

GRUB_CFG = """\
set default="1"
if [ x"${feature_menuentry_id}" = xy ]; then
  menuentry_id_option="--id"
fi
menuentry 'CentOS Linux (3.10.0-1160.el7.x86_64) 7 (Core)' --class centos $menuentry_id_option 'a' {
	load_video
	insmod ext2
	linux16 /boot/vmlinuz-3.10.0-1160.el7.x86_64 root=UUID=abc ro crashkernel=auto
	initrd16 /boot/initramfs-3.10.0-1160.el7.x86_64.img
}
menuentry 'CentOS Linux (3.10.0-957.el7.x86_64) 7 (Core)' --class centos {
	linux16 /boot/vmlinuz-3.10.0-957.el7.x86_64 root=UUID=abc ro
	initrd16 /boot/initramfs-3.10.0-957.el7.x86_64.img
}
"""


def test_bls_entry_fields() -> None:
    entry = parse_bls_entry(DEBIAN_BLS, "debian12-6.1.0-27-amd64.conf")
    assert entry is not None
    assert entry.kernel == "/boot/vmlinuz-6.1.0-27-amd64"
    assert entry.initrds == ("/boot/initrd.img-6.1.0-27-amd64",)
    assert entry.options == "root=UUID=1111-2222 rw console=ttyS0 quiet"
    assert parse_bls_entry("title nothing\n") is None


def test_newest_bls_entry_wins_numerically() -> None:
    entries = [
        parse_bls_entry(f"version {v}\nlinux /k-{v}\n", f"{v}.conf") for v in ("6.9.3", "6.12.1", "6.1.0")
    ]
    chosen = choose_bls([e for e in entries if e])
    assert chosen is not None and chosen.version == "6.12.1"


def test_grub_default_index_and_title() -> None:
    entries, default = parse_grub_cfg(GRUB_CFG)
    assert default == "1"
    assert [e.kernel for e in entries] == [
        "/boot/vmlinuz-3.10.0-1160.el7.x86_64",
        "/boot/vmlinuz-3.10.0-957.el7.x86_64",
    ]
    chosen = choose_grub(entries, default)
    assert chosen is not None and chosen.options == "root=UUID=abc ro"
    by_title = choose_grub(entries, "saved", saved_entry="CentOS Linux (3.10.0-1160.el7.x86_64) 7 (Core)")
    assert by_title is entries[0]
    assert choose_grub(entries, "7") is entries[0]


def test_grubenv_variables_expand() -> None:
    env = {"kernelopts": "root=/dev/mapper/rl-root ro"}
    assert expand_grub_vars("$kernelopts ${tuned_params} quiet", env) == "root=/dev/mapper/rl-root ro quiet"


def test_merge_cmdline_extra_wins() -> None:
    assert merge_cmdline("root=UUID=a ro quiet console=tty0", "console=ttyS0 systemd.hostname=n1") == (
        "root=UUID=a ro quiet console=ttyS0 systemd.hostname=n1"
    )
    assert merge_cmdline("root=a", "") == "root=a"


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def test_find_boot_config_from_bls(tmp_path: Path) -> None:
    _touch(tmp_path / "boot/vmlinuz-6.1.0-27-amd64")
    _touch(tmp_path / "boot/initrd.img-6.1.0-27-amd64")
    (tmp_path / "boot/loader/entries").mkdir(parents=True)
    (tmp_path / "boot/loader/entries/debian12.conf").write_text(DEBIAN_BLS)
    cfg = find_boot_config(tmp_path)
    assert cfg.kernel == tmp_path / "boot/vmlinuz-6.1.0-27-amd64"
    assert cfg.initrd == tmp_path / "boot/initrd.img-6.1.0-27-amd64"
    assert cfg.cmdline.startswith("root=UUID=1111-2222 rw")


def test_el_bls_paths_relative_to_boot_and_grubenv(tmp_path: Path) -> None:
    _touch(tmp_path / "boot/vmlinuz-4.18.0-513.el8.x86_64")
    _touch(tmp_path / "boot/initramfs-4.18.0-513.el8.x86_64.img")
    (tmp_path / "boot/loader/entries").mkdir(parents=True)
    (tmp_path / "boot/loader/entries/rocky.conf").write_text(EL_BLS)
    (tmp_path / "boot/grub2").mkdir()
    (tmp_path / "boot/grub2/grubenv").write_text("# GRUB Environment Block\nkernelopts=root=UUID=r ro\n")
    cfg = find_boot_config(tmp_path)
    assert cfg.kernel.name == "vmlinuz-4.18.0-513.el8.x86_64"
    assert cfg.initrd == tmp_path / "boot/initramfs-4.18.0-513.el8.x86_64.img"
    assert cfg.cmdline == "root=UUID=r ro"


def test_find_boot_config_from_grub_cfg(tmp_path: Path) -> None:
    _touch(tmp_path / "boot/vmlinuz-3.10.0-957.el7.x86_64")
    _touch(tmp_path / "boot/initramfs-3.10.0-957.el7.x86_64.img")
    (tmp_path / "boot/grub2").mkdir(parents=True)
    (tmp_path / "boot/grub2/grub.cfg").write_text(GRUB_CFG)
    cfg = find_boot_config(tmp_path)
    assert cfg.kernel.name == "vmlinuz-3.10.0-957.el7.x86_64"
    assert cfg.source.startswith("grub.cfg")


def test_debian_symlinks_resolve_inside_the_root(tmp_path: Path) -> None:
    _touch(tmp_path / "boot/vmlinuz-6.12.9-amd64")
    _touch(tmp_path / "boot/initrd.img-6.12.9-amd64")
    (tmp_path / "vmlinuz").symlink_to("boot/vmlinuz-6.12.9-amd64")
    (tmp_path / "initrd.img").symlink_to("/boot/initrd.img-6.12.9-amd64")  # absolute: inside the root
    cfg = find_boot_config(tmp_path, fallback_cmdline="root=UUID=x rw")
    assert cfg.kernel == tmp_path / "boot/vmlinuz-6.12.9-amd64"
    assert cfg.initrd == tmp_path / "boot/initrd.img-6.12.9-amd64"
    assert cfg.cmdline == "root=UUID=x rw"


def test_no_kernel_is_not_found(tmp_path: Path) -> None:
    (tmp_path / "boot/loader/entries").mkdir(parents=True)
    (tmp_path / "boot/loader/entries/x.conf").write_text("linux /boot/vmlinuz-missing\n")
    with pytest.raises(NotFound) as err:
        find_boot_config(tmp_path)
    assert err.value.hint
