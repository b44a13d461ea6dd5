#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
test_description='golden disks captured and flashed onto other disks boot (SeaBIOS and OVMF)'
. "$(dirname "$0")/../lib/test-lib.sh"
. "$TESTS_DIR/lib/disks.sh"
. "$TESTS_DIR/lib/qemu.sh"

export IMAGER_STORE=$TRASH/store

# the flashed disk must boot through the named firmware path to the payload hash
assert_booted() {
	local log=$1 fw=$2 root=$3 sum=$4
	grep -aq "IMAGER-GRUB $root" "$log" || { echo "no 'IMAGER-GRUB $root' in $log"; return 1; }
	grep -aq "IMAGER-BOOT-INFO firmware=$fw kernel=" "$log" ||
		{ echo "no 'firmware=$fw' in $log"; return 1; }
	grep -aq "IMAGER-BOOT-OK $sum" "$log" || { echo "no 'IMAGER-BOOT-OK $sum' in $log"; return 1; }
	! grep -aq "IMAGER-BOOT-FAIL" "$log"
}

test_expect_success GRUB_PC,GRUB_EFI 'capture bootable GPT and MBR golden disks, flash them' '
	make_gpt_disk --bootable golden.img &&
	make_mbr_disk --bootable mbr.img &&
	"$IMAGER" capture golden.img --image golden-gpt --progress=none &&
	"$IMAGER" capture mbr.img --image golden-mbr --progress=none &&
	"$IMAGER" flash golden-gpt gpt-flashed.img --size 640M --grow --yes &&
	"$IMAGER" flash golden-mbr mbr-flashed.img --size 600M --yes &&
	ext4_file_sums gpt-flashed.img 3 >g.sums && test_cmp golden.img.root.sums g.sums &&
	ext4_file_sums mbr-flashed.img 1 >m.sums && test_cmp mbr.img.root.sums m.sums &&
	cmp -n 440 golden.img gpt-flashed.img && cmp -n 440 mbr.img mbr-flashed.img
'

test_expect_success QEMU,GRUB_PC 'the flashed and grown GPT disk boots under SeaBIOS' '
	qemu_boot_disk gpt-flashed.img --firmware bios --snapshot --log gpt-bios.log \
		--expect "IMAGER-BOOT-OK $(cat golden.img.payload.sha256)" &&
	assert_booted gpt-bios.log bios "pc root=hd0,gpt3" "$(cat golden.img.payload.sha256)"
'

test_expect_success QEMU,OVMF,GRUB_EFI 'the flashed GPT disk boots under OVMF' '
	qemu_boot_disk gpt-flashed.img --firmware uefi --snapshot --log gpt-uefi.log \
		--expect "IMAGER-BOOT-OK $(cat golden.img.payload.sha256)" &&
	assert_booted gpt-uefi.log uefi "efi root=hd0,gpt3" "$(cat golden.img.payload.sha256)"
'

test_expect_success QEMU,GRUB_PC 'the flashed MBR disk (GRUB in the post-MBR gap) boots under SeaBIOS' '
	qemu_boot_disk mbr-flashed.img --firmware bios --snapshot --log mbr-bios.log \
		--expect "IMAGER-BOOT-OK $(cat mbr.img.payload.sha256)" &&
	assert_booted mbr-bios.log bios "pc root=hd0,msdos1" "$(cat mbr.img.payload.sha256)"
'

test_done
