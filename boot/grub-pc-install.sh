#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# boot/grub-pc-install.sh DISK_IMAGE CORE_IMG CORE_LBA [BOOT_IMG]
#
# Does with dd what `grub-install --target=i386-pc` does to a disk (it cannot
# run on image files or loop devices on the build machines): writes CORE_IMG
# (from `grub-mkimage -O i386-pc`) at sector CORE_LBA, points its first
# block-list entry at the sector after, and puts BOOT_IMG's code into sector 0
# pointed at CORE_LBA, keeping the disk's own BPB area and partition table.
# CORE_LBA is the first sector of a GPT BIOS boot partition, or 1 for the gap
# after an MBR. DISK_IMAGE must be a regular file (never a device).
# BOOT_IMG defaults to /usr/lib/grub/i386-pc/boot.img.
#
# Used by boot/build.sh (the appliance image) and tests/lib/disks.sh (the
# golden fixture disks).
set -euo pipefail

prog=${0##*/}
die() { echo "$prog: $*" >&2; exit 1; }

# GRUB's BIOS boot code reads 512-byte sectors through INT 13h: these offsets
# and the block list are in those units whatever the disk reports
GRUB_PC_SECTOR_BYTES=512
BOOT_IMG_KERNEL_SECTOR=$((0x5C))   # boot.img: le64 LBA of core.img's first sector
BOOT_IMG_FLOPPY_CHECK=$((0x66))    # boot.img: "jump if boot drive is a floppy"
BOOT_IMG_BPB_END=$((0x5A))         # bytes 3..0x59: the disk's BPB area, kept
BOOT_IMG_CODE_END=$((0x1B8))       # from 0x1B8: disk signature and partition table, kept
DISKBOOT_BLOCKLIST=$((0x1F4))      # core.img sector 0: le64 start of the first block list

[ $# -ge 3 ] && [ $# -le 4 ] || die "usage: $prog DISK_IMAGE CORE_IMG CORE_LBA [BOOT_IMG]"
disk=$1 core=$2 lba=$3 bootimg=${4:-/usr/lib/grub/i386-pc/boot.img}
[ -f "$disk" ] && [ ! -L "$disk" ] || die "'$disk' is not a regular file"
[ -r "$core" ] || die "cannot read '$core'"
[ -r "$bootimg" ] || die "cannot read '$bootimg' (package grub-pc-bin)"
case $lba in '' | *[!0-9]*) die "bad LBA '$lba'" ;; esac
[ "$lba" -ge 1 ] || die "core.img cannot go to sector 0"
[ "$(stat -c %s "$bootimg")" -eq $GRUB_PC_SECTOR_BYTES ] || die "'$bootimg' is not one sector"

# le VALUE NBYTES: VALUE as little-endian bytes
le() {
	local v=$1 n=$2 i out=
	for ((i = 0; i < n; i++)); do
		out+=$(printf '\\x%02x' $(((v >> (8 * i)) & 0xff)))
	done
	printf "$out"
}
# poke OFFSET: stdin at byte OFFSET of the disk
poke() { dd of="$disk" bs=1 seek="$1" conv=notrunc status=none; }
# copy_boot FROM COUNT: boot.img bytes [FROM, FROM+COUNT) to the same place in sector 0
copy_boot() { dd if="$bootimg" of="$disk" bs=1 skip="$1" seek="$1" count="$2" conv=notrunc status=none; }

core_bytes=$(stat -c %s "$core")
[ "$core_bytes" -gt $GRUB_PC_SECTOR_BYTES ] || die "'$core' is too small for a core.img"
core_off=$((lba * GRUB_PC_SECTOR_BYTES))
[ "$(stat -c %s "$disk")" -ge $((core_off + core_bytes)) ] || die "'$disk' is too small"

dd if="$core" of="$disk" bs=$GRUB_PC_SECTOR_BYTES seek="$lba" conv=notrunc status=none
# diskboot.img ends in a block list (le64 start, le16 count, le16 segment);
# grub-mkimage filled count and segment, the start is where core.img lies
le $((lba + 1)) 8 | poke $((core_off + DISKBOOT_BLOCKLIST))

copy_boot 0 3    # the jump over the BPB
copy_boot $BOOT_IMG_BPB_END $((BOOT_IMG_CODE_END - BOOT_IMG_BPB_END))
le "$lba" 8 | poke $BOOT_IMG_KERNEL_SECTOR
# two NOPs over the floppy check, as grub-install writes them for hard disks
printf '\x90\x90' | poke $BOOT_IMG_FLOPPY_CHECK
