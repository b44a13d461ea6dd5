#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
test_description='the bootable golden fixture disks really boot (SeaBIOS and OVMF)'
. "$(dirname "$0")/../lib/test-lib.sh"
. "$TESTS_DIR/lib/disks.sh"
. "$TESTS_DIR/lib/qemu.sh"

# Each boot must end in the initramfs's "IMAGER-BOOT-OK <sha256>" with the hash
# of the payload that was packed on this host: GRUB found its config on the
# ext4 root, read the kernel and initrd bytes intact, and the kernel ran them.
# A wrong byte in the initrd gives a failed decompression or a FAIL marker; a
# boot through the wrong firmware path gives the wrong firmware= line.

# assert_booted LOG FIRMWARE GRUB_ROOT: the markers in the serial log LOG
assert_booted() {
	local log=$1 fw=$2 root=$3 sum
	sum=$(cat golden.img.payload.sha256 2>/dev/null || cat mbr.img.payload.sha256)
	grep -aq "IMAGER-GRUB $root" "$log" ||
		{ echo "no 'IMAGER-GRUB $root' in $log"; return 1; }
	grep -aq "IMAGER-BOOT-INFO firmware=$fw kernel=" "$log" ||
		{ echo "no 'firmware=$fw' in $log"; return 1; }
	grep -aq "IMAGER-BOOT-OK $sum" "$log" ||
		{ echo "no 'IMAGER-BOOT-OK $sum' in $log"; return 1; }
	! grep -aq "IMAGER-BOOT-FAIL" "$log"
}

test_expect_success GRUB_PC,GRUB_EFI 'build the bootable GPT and MBR golden disks' '
	make_gpt_disk --bootable golden.img &&
	make_mbr_disk --bootable mbr.img &&
	test_cmp golden.img.payload.sha256 mbr.img.payload.sha256 &&
	grep -q "  /boot/vmlinuz$" golden.img.root.sums &&
	grep -q "  /boot/initrd.img$" golden.img.root.sums &&
	ext4_file_sums golden.img 3 >root.sums && test_cmp golden.img.root.sums root.sums &&
	ext4_file_sums mbr.img 1 >mbr.sums && test_cmp mbr.img.root.sums mbr.sums
'

test_expect_success QEMU,GRUB_PC 'GPT golden disk boots under SeaBIOS' '
	qemu_boot_disk golden.img --firmware bios --snapshot --log gpt-bios.log \
		--expect "IMAGER-BOOT-OK $(cat golden.img.payload.sha256)" &&
	assert_booted gpt-bios.log bios "pc root=hd0,gpt3"
'

test_expect_success QEMU,OVMF,GRUB_EFI 'GPT golden disk boots under OVMF' '
	qemu_boot_disk golden.img --firmware uefi --snapshot --log gpt-uefi.log \
		--expect "IMAGER-BOOT-OK $(cat golden.img.payload.sha256)" &&
	assert_booted gpt-uefi.log uefi "efi root=hd0,gpt3"
'

test_expect_success QEMU,GRUB_PC 'MBR golden disk boots under SeaBIOS' '
	qemu_boot_disk mbr.img --firmware bios --snapshot --log mbr-bios.log \
		--expect "IMAGER-BOOT-OK $(cat mbr.img.payload.sha256)" &&
	assert_booted mbr-bios.log bios "pc root=hd0,msdos1"
'

test_expect_success 'the golden disks were not written by the boots (snapshot=on)' '
	ext4_file_sums golden.img 3 >root.after && test_cmp golden.img.root.sums root.after &&
	ext4_file_sums mbr.img 1 >mbr.after && test_cmp mbr.img.root.sums mbr.after
'

test_done
