#!/bin/sh
# mmdebstrap --setup-hook: runs on the host before apt resolves or installs anything.
# $1 = the new root; $2 = the recipe directory. Everything written here must exist before the packages
# that read it are configured (apt pins; initramfs-tools settings, read when the kernel's postinst builds
# the initrd, so that it is built once and small).
set -eu
root=$1 recipe=$2
if [ -n "${CMT_APT_PREFERENCES:-}" ]; then
    mkdir -p "$root/etc/apt/preferences.d"
    cp "$recipe/$CMT_APT_PREFERENCES" "$root/etc/apt/preferences.d/cmt.pref"
fi
mkdir -p "$root/etc/initramfs-tools/conf.d" "$root/etc/initramfs-tools/hooks"
cat > "$root/etc/initramfs-tools/conf.d/cmt.conf" <<'CONF'
# Only the listed modules (plus what hooks add): the default, MODULES=most, makes a 30+ MB initrd, and
# MODULES=dep would probe the build host's disks.
MODULES=list
COMPRESS=zstd
CONF
cat > "$root/etc/initramfs-tools/hooks/cmt-modules" <<'HOOK'
#!/bin/sh
# Storage and filesystem drivers a node root may need: virtio (QEMU), NVMe/AHCI/SCSI (metal), ext4/xfs.
[ "$1" = prereqs ] && exit 0
. /usr/share/initramfs-tools/hook-functions
for m in virtio_pci virtio_blk virtio_scsi sd_mod nvme ahci ext4 crc32c_generic crc32c_intel; do
    manual_add_modules "$m" 2>/dev/null || true
done
for m in virtio_pci virtio_blk ext4; do
    force_load "$m" 2>/dev/null || true
done
HOOK
chmod 0755 "$root/etc/initramfs-tools/hooks/cmt-modules"
