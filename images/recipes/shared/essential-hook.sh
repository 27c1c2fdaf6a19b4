#!/bin/sh
# mmdebstrap --essential-hook: the essential packages are installed, the rest (slurm, munge) not yet.
# Create the slurm and munge accounts with fixed ids first: the reimager can then chown the munge key
# without reading the image's passwd, and bookworm's slurm preinst (run on trixie) skips its adduser call,
# which trixie's adduser refuses.
set -eu
root=$1
add_account() { # name uid home
    grep -q "^$1:" "$root/etc/group" || echo "$1:x:$2:" >> "$root/etc/group"
    [ ! -e "$root/etc/gshadow" ] || grep -q "^$1:" "$root/etc/gshadow" || echo "$1:!::" >> "$root/etc/gshadow"
    grep -q "^$1:" "$root/etc/passwd" || echo "$1:x:$2:$2::$3:/usr/sbin/nologin" >> "$root/etc/passwd"
    [ ! -e "$root/etc/shadow" ] || grep -q "^$1:" "$root/etc/shadow" || echo "$1:!:1::::::" >> "$root/etc/shadow"
}
add_account slurm 990 /nonexistent
add_account munge 991 /nonexistent
