#!/bin/sh
# mmdebstrap --customize-hook: every package is installed; turn the tree into a node image.
# $1 = the new root. Environment (set by cmt_slurm/lab/imagebuild/rootfs.py):
#   CMT_OS (os tag), CMT_ROOT_UUID (ext4 UUID the disk step will use), CMT_KERNEL_ARGS.
# What the reimager writes later, per node (docs/dev/contracts.md, "Node images"): hostname, machine-id,
# /etc/cmt/node.json, /etc/default/slurmd (the --conf-server address), /etc/munge/munge.key.
set -eu
root=$1
here=$(cd "$(dirname "$0")" && pwd)
: "${CMT_OS:?}" "${CMT_ROOT_UUID:?}" "${CMT_KERNEL_ARGS:?}"

echo "$CMT_OS" > "$root/etc/hostname"
printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' > "$root/etc/hosts"
# Empty machine-id: systemd makes one at first boot unless the reimager wrote one (every node its own).
: > "$root/etc/machine-id"
rm -f "$root/var/lib/dbus/machine-id"
# Root is mounted rw by the kernel command line; no fsck at boot (the reimager ran e2fsck after growing).
printf 'UUID=%s / ext4 defaults,noatime 0 0\n' "$CMT_ROOT_UUID" > "$root/etc/fstab"

# DHCP on every wired link; no DNS resolver is configured (Slurm is reached by address).
mkdir -p "$root/etc/systemd/network"
cat > "$root/etc/systemd/network/20-wired.network" <<'NET'
[Match]
Name=en* eth*

[Network]
DHCP=ipv4
LinkLocalAddressing=no
IPv6AcceptRA=no
NET
chroot "$root" systemctl enable systemd-networkd.service >/dev/null 2>&1
# network-online.target waits for one configured link (slurmd's config fetch needs an address), not all.
mkdir -p "$root/etc/systemd/system/systemd-networkd-wait-online.service.d"
cat > "$root/etc/systemd/system/systemd-networkd-wait-online.service.d/cmt.conf" <<'UNIT'
[Service]
ExecStart=
ExecStart=/lib/systemd/systemd-networkd-wait-online --any --timeout=60
UNIT

# Configless slurmd: Debian's unit refuses to start without /etc/slurm/slurm.conf; the controller address
# comes from /etc/default/slurmd (SLURMD_OPTIONS="--conf-server HOST:PORT"), written by the reimager.
mkdir -p "$root/etc/systemd/system/slurmd.service.d"
cat > "$root/etc/systemd/system/slurmd.service.d/cmt.conf" <<'UNIT'
[Unit]
ConditionPathExists=
After=munge.service network-online.target
Wants=network-online.target

[Service]
EnvironmentFile=-/etc/default/slurmd
UNIT
# Never ship a munge key: all nodes of an image would share it with whoever holds the image.
rm -f "$root/etc/munge/munge.key"
mkdir -p "$root/var/spool/slurmd" "$root/var/log/slurm"

# Boot marker on the console: the tests and the lab's timeline read it.
install -m 0755 "$here/cmt-os-up" "$root/usr/local/sbin/cmt-os-up"
cat > "$root/etc/systemd/system/cmt-os-up.service" <<'UNIT'
[Unit]
Description=Print the OS identity on the console (cmt-slurm boot marker)
After=basic.target

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/cmt-os-up
StandardOutput=tty
TTYPath=/dev/console

[Install]
WantedBy=multi-user.target
UNIT
chroot "$root" systemctl enable cmt-os-up.service >/dev/null 2>&1

# cmt-node, its code and cmt-node-ready.service are not baked in: the reimager installs them into the new
# root at identity time from the live env (docs/dev/contracts.md), so the image needs only python3 and never
# a rebuild when cmt-slurm changes.

# Boot speed: nothing a short-lived, reimaged node needs (measured ~2 s under TCG, see the notes); modules
# load on demand (modprobe@ instances only preload drm, fuse, configfs, loop, dm_mod).
for u in apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer e2scrub_all.timer e2scrub_reap.service \
    fstrim.timer systemd-tmpfiles-clean.timer systemd-firstboot.service systemd-pstore.service \
    systemd-journal-flush.service systemd-random-seed.service systemd-update-utmp.service \
    systemd-update-utmp-runlevel.service keyboard-setup.service getty@tty1.service \
    ldconfig.service systemd-update-done.service kexec-load.service kexec.service \
    modprobe@.service systemd-binfmt.service proc-sys-fs-binfmt_misc.automount \
    systemd-journal-catalog-update.service systemd-hwdb-update.service systemd-network-generator.service \
    sys-kernel-debug.mount sys-kernel-tracing.mount sys-kernel-config.mount sys-fs-fuse-connections.mount \
    dev-hugepages.mount systemd-tpm2-setup-early.service systemd-tpm2-setup.service \
    systemd-pcrmachine.service systemd-pcrphase.service systemd-pcrphase-sysinit.service \
    systemd-hibernate-clear.service systemd-boot-random-seed.service; do
    ln -sf /dev/null "$root/etc/systemd/system/$u"
done
# Serial console getty stays: an admin can log in on ttyS0 (root has no password: set one or a key).
mkdir -p "$root/etc/systemd/journald.conf.d"
printf '[Journal]\nStorage=volatile\nRuntimeMaxUse=32M\n' > "$root/etc/systemd/journald.conf.d/cmt.conf"

# BLS entry: what the reimager reads to kexec into this OS (docs/dev/contracts.md).
kver=$(ls "$root/lib/modules" | sort -V | tail -1)
[ -e "$root/boot/vmlinuz-$kver" ] && [ -e "$root/boot/initrd.img-$kver" ] || { echo "kernel $kver or its initrd missing" >&2; exit 1; }
. "$root/etc/os-release"
mkdir -p "$root/boot/loader/entries"
cat > "$root/boot/loader/entries/$CMT_OS-$kver.conf" <<BLS
title $PRETTY_NAME
version $kver
linux /boot/vmlinuz-$kver
initrd /boot/initrd.img-$kver
options root=UUID=$CMT_ROOT_UUID rw $CMT_KERNEL_ARGS
BLS

# Trim: caches and logs of the build; docs/man/locales never got unpacked (dpkg path-exclude).
rm -rf "$root/var/cache/apt/"*.bin "$root/var/cache/debconf/"*-old "$root/var/lib/dpkg/"*-old \
    "$root/var/log/"*.log "$root/var/log/apt" "$root/tmp/"* "$root/root/.bash_history"
