#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
test_description='golden disk fixtures: layouts, GRUB boot code, file systems, reproducibility'
. "$(dirname "$0")/../lib/test-lib.sh"
. "$TESTS_DIR/lib/disks.sh"

# These check tests/lib/disks.sh without QEMU (tests/vm/t9000 boots them).
# All on image files, without root (one LOOP test reads the 4Kn table back
# through a 4096-byte-sector loop device).
EXP=$TESTS_DIR/expected/t0100-fixtures
BOOT_IMG=$DISKS_GRUB_DIR_PC/boot.img

# hexat FILE OFFSET COUNT
hexat() { _disks_hex "$@"; }

# assert_boot_img DISK CORE_LBA: sector 0 holds GRUB's boot.img, patched the
# way grub-install patches it, around the disk's own BPB area and table
assert_boot_img() {
	local disk=$1 lba=$2
	cmp -n 3 "$disk" "$BOOT_IMG"                              # jmp
	cmp -i $((0x5A)):$((0x5A)) -n 2 "$disk" "$BOOT_IMG"       # before kernel_sector
	cmp -i $((0x64)):$((0x64)) -n 2 "$disk" "$BOOT_IMG"       # boot_drive
	cmp -i $((0x68)):$((0x68)) -n $((0x1B8 - 0x68)) "$disk" "$BOOT_IMG"
	expect_eq "$(_disks_u64 "$disk" $((0x5C)))" "$lba" "kernel_sector at 0x5C"
	expect_eq "$(hexat "$disk" $((0x66)) 2)" 9090 "NOPs at 0x66"
	expect_eq "$(hexat "$disk" 510 2)" 55aa "boot signature"
	# the BPB area (3..0x59) is the disk's own: zeros in sfdisk's sector 0
	expect_eq "$(hexat "$disk" 3 $((0x5A - 3)) | tr -d 0)" "" "BPB area"
}

# assert_core_img DISK CORE_LBA PREFIX: GRUB's core.img at CORE_LBA, equal to
# grub-mkimage's output but for the block list pointing at CORE_LBA + 1
assert_core_img() {
	local disk=$1 lba=$2 size
	grub_pc_core ref-core.img "$3"
	size=$(stat -c %s ref-core.img)
	cmp -i $((lba * 512)):0 -n $((0x1F4)) "$disk" ref-core.img
	expect_eq "$(_disks_u64 "$disk" $((lba * 512 + 0x1F4)))" $((lba + 1)) "block list start"
	cmp -i $((lba * 512 + 0x1FC)):$((0x1FC)) -n $((size - 0x1FC)) "$disk" ref-core.img
}

test_expect_success 'make_gpt_disk: partition table' '
	make_gpt_disk gpt.img &&
	expect_eq "$(stat -c %s gpt.img)" 536870912 size &&
	sfdisk --json gpt.img >gpt.json &&
	test_cmp "$EXP/gpt.json" gpt.json &&
	expect_eq "$(part_start_bytes gpt.img 2)" $((2 * 1048576)) "ESP start" &&
	expect_eq "$(part_size_bytes gpt.img 3)" $((911360 * 512)) "root size"
'

test_expect_success GRUB_PC 'make_gpt_disk: GRUB boot.img in sector 0, core.img in the BIOS boot partition' '
	assert_boot_img gpt.img 2048 &&
	expect_eq "$(hexat gpt.img $((0x1C2)) 1)" ee "protective MBR type" &&
	assert_core_img gpt.img 2048 "(,gpt3)/boot/grub"
'

test_expect_success GRUB_EFI 'make_gpt_disk: ESP is FAT32 with GRUB as EFI/BOOT/BOOTX64.EFI' '
	off=$(part_start_bytes gpt.img 2) &&
	expect_eq "$(blkid -p -O "$off" -s TYPE -s UUID -s LABEL -o export gpt.img | grep -v ^DEVNAME= | sort | tr "\n" " ")" \
		"LABEL=ESP TYPE=vfat UUID=6E1D-0E5F " &&
	minfo -i "gpt.img@@$off" >minfo.txt &&
	grep -q "^sector size: 512 bytes" minfo.txt &&
	grep -q "^disk type=\"FAT32 " minfo.txt &&
	grep -q "^hidden sectors: 4096$" minfo.txt &&
	mcopy -n -i "gpt.img@@$off" ::/EFI/BOOT/BOOTX64.EFI bootx64.efi &&
	grub_efi_image ref.efi "(,gpt3)/boot/grub" &&
	cmp ref.efi bootx64.efi &&
	fat_file_sums gpt.img 2 >esp.sums &&
	test_cmp gpt.img.esp.sums esp.sums &&
	grep -q "^$(sha256sum <ref.efi | cut -c1-64)  /EFI/BOOT/BOOTX64.EFI$" esp.sums
'

test_expect_success 'make_gpt_disk: ext4 root with fixed ids and the staged files' '
	off=$(part_start_bytes gpt.img 3) &&
	dumpe2fs -h "gpt.img?offset=$off" >sb.txt 2>/dev/null &&
	grep -q "^Filesystem UUID: *6e1d0a6e-e4e4-4000-8000-000000000003$" sb.txt &&
	grep -q "^Directory Hash Seed: *6e1d0a6e-4a54-4000-8000-000000000000$" sb.txt &&
	grep -q "^Filesystem volume name: *root$" sb.txt &&
	grep -q "^Block size: *4096$" sb.txt &&
	grep -q "^Filesystem created: *Tue Nov 14 22:13:20 2023$" sb.txt &&
	test_cmp "$EXP/root.sums" gpt.img.root.sums &&
	ext4_file_sums gpt.img 3 >root.sums &&
	test_cmp gpt.img.root.sums root.sums &&
	! grep -q vmlinuz root.sums &&
	e2fsck -fn "gpt.img?offset=$off" >fsck.txt 2>&1
'

test_expect_success 'make_gpt_disk is reproducible byte for byte' '
	make_gpt_disk gpt2.img &&
	cmp gpt.img gpt2.img &&
	rm -f gpt2.img*
'

test_expect_success 'ext4_file_sums and fat_file_sums see a changed byte' '
	cp gpt.img changed.img &&
	off=$(part_start_bytes changed.img 3) &&
	blk=$(debugfs -R "bmap /payload.bin 100" "changed.img?offset=$off" 2>/dev/null) &&
	printf "\\x00\\x01" | _disks_poke changed.img $((off + blk * 4096 + 17)) &&
	ext4_file_sums changed.img 3 >changed.sums &&
	! test_cmp gpt.img.root.sums changed.sums >diff.txt &&
	expect_eq "$(grep -c "^[-+][0-9a-f]" diff.txt)" 2 "changed lines" &&
	grep -q "^+[0-9a-f]*  /payload.bin$" diff.txt &&
	echo changed | mcopy -o -i "changed.img@@$(part_start_bytes changed.img 2)" - ::/imager-fixture.txt &&
	fat_file_sums changed.img 2 >changed-esp.sums &&
	! test_cmp gpt.img.esp.sums changed-esp.sums >diff.txt &&
	grep -q "^+[0-9a-f]*  /imager-fixture.txt$" diff.txt
'

test_expect_success 'damage_primary_gpt zeroes LBA 1 and keeps the backup' '
	cp gpt.img damaged.img &&
	damage_primary_gpt damaged.img &&
	expect_eq "$(hexat damaged.img 512 512 | tr -d 0)" "" "primary header" &&
	expect_eq "$(hexat damaged.img $((536870912 - 512)) 8)" "$DISKS_GPT_SIGNATURE" "backup header" &&
	cmp -n 512 gpt.img damaged.img &&
	cmp -i 1024:1024 gpt.img damaged.img &&
	sfdisk --json damaged.img 2>/dev/null | sed s/damaged.img/gpt.img/g >damaged.json &&
	test_cmp "$EXP/gpt.json" damaged.json
'

test_expect_success 'make_mbr_disk: table, GRUB in the post-MBR gap, ext4 and swap' '
	make_mbr_disk mbr.img &&
	sfdisk --json mbr.img >mbr.json &&
	test_cmp "$EXP/mbr.json" mbr.json &&
	expect_eq "$(hexat mbr.img $((0x1B8)) 4)" 6e0a1d6e "disk signature" &&
	assert_boot_img mbr.img 1 &&
	assert_core_img mbr.img 1 "(,msdos1)/boot/grub" &&
	expect_eq "$(blkid -p -O "$(part_start_bytes mbr.img 2)" -s TYPE -s UUID -s LABEL -o export mbr.img | grep -v ^DEVNAME= | sort | tr "\n" " ")" \
		"LABEL=swap TYPE=swap UUID=6e1d0a6e-5a5a-4000-8000-000000000002 " &&
	expect_eq "$(blkid -p -O "$(part_start_bytes mbr.img 1)" -s UUID -o value mbr.img)" \
		6e1d0a6e-e4e4-4000-8000-000000000001 "root UUID" &&
	ext4_file_sums mbr.img 1 >mbr.sums &&
	test_cmp mbr.img.root.sums mbr.sums &&
	sed "s/^[0-9a-f]*  \/etc\/fstab$/FSTAB/" mbr.sums >a &&
	sed "s/^[0-9a-f]*  \/etc\/fstab$/FSTAB/" gpt.img.root.sums >b &&
	test_cmp b a
'

test_expect_success 'make_gpt_disk_4kn: GPT for 4096-byte sectors' '
	make_gpt_disk_4kn g4k.img &&
	expect_eq "$(disk_sector_size g4k.img)" 4096 "sector size" &&
	expect_eq "$(hexat g4k.img 512 8)" 0000000000000000 "no header at 512" &&
	expect_eq "$(_disks_u64 g4k.img $((4096 + 24)))" 1 "MyLBA" &&
	expect_eq "$(_disks_u64 g4k.img $((4096 + 72)))" 2 "PartitionEntryLBA" &&
	expect_eq "$(_disks_u64 g4k.img $((4096 + 32)))" $((131072 - 1)) "AlternateLBA" &&
	expect_eq "$(hexat g4k.img $((536870912 - 4096)) 8)" "$DISKS_GPT_SIGNATURE" "backup header" &&
	for n in 1 2 3; do part_start_bytes g4k.img $n; part_size_bytes g4k.img $n; done >parts &&
	printf "%s\n" 1048576 1048576 2097152 272629760 274726912 261095424 >expect &&
	test_cmp expect parts &&
	expect_eq "$(hexat g4k.img 0 440 | tr -d 0)" "" "no BIOS boot code on 4Kn"
'

test_expect_success GRUB_EFI 'make_gpt_disk_4kn: 4K-sector FAT32 ESP and ext4 root' '
	off=$(part_start_bytes g4k.img 2) &&
	minfo -i "g4k.img@@$off" >minfo.txt &&
	grep -q "^sector size: 4096 bytes" minfo.txt &&
	grep -q "^hidden sectors: 512$" minfo.txt &&
	mcopy -n -i "g4k.img@@$off" ::/EFI/BOOT/BOOTX64.EFI bootx64.efi &&
	grub_efi_image ref.efi "(,gpt3)/boot/grub" &&
	cmp ref.efi bootx64.efi &&
	fat_file_sums g4k.img 2 | test_cmp g4k.img.esp.sums - &&
	ext4_file_sums g4k.img 3 | test_cmp g4k.img.root.sums - &&
	dumpe2fs -h "g4k.img?offset=$(part_start_bytes g4k.img 3)" 2>/dev/null |
		grep -q "^Filesystem UUID: *6e1d0a6e-e4e4-4000-8000-000000004096$"
'

test_expect_success LOOP 'make_gpt_disk_4kn: libfdisk reads the table on a 4Kn loop device' '
	dev=$(loop_attach g4k.img 4096) &&
	sfdisk --json "$dev" | normalize | sed "s#/dev/loopX#DISK#g" >g4k.json &&
	expect_eq "$(disk_sector_size "$dev")" 4096 "sector size of $dev" &&
	ext4_file_sums "$dev" 3 >dev-root.sums &&
	fat_file_sums "$dev" 2 >dev-esp.sums &&
	loop_detach "$dev" &&
	test_cmp "$EXP/gpt-4kn.json" g4k.json &&
	test_cmp g4k.img.root.sums dev-root.sums &&
	test_cmp g4k.img.esp.sums dev-esp.sums
'

test_expect_success LOOP 'ext4_file_sums and fat_file_sums read loop devices' '
	dev=$(loop_attach gpt.img) &&
	ext4_file_sums "$dev" 3 >dev-root.sums &&
	fat_file_sums "$dev" 2 >dev-esp.sums &&
	loop_detach "$dev" &&
	test_cmp gpt.img.root.sums dev-root.sums &&
	test_cmp gpt.img.esp.sums dev-esp.sums
'

test_expect_success 'make_blank_disk, and refusals outside $TRASH' '
	make_blank_disk blank.img 3M &&
	expect_eq "$(stat -c %s blank.img)" 3145728 size &&
	cmp -n 3145728 blank.img /dev/zero &&
	expect_exit 1 make_blank_disk /tmp/imager-t0100-must-not-exist.img 1M &&
	test ! -e /tmp/imager-t0100-must-not-exist.img &&
	expect_exit 1 make_gpt_disk /dev/null &&
	expect_exit 1 make_gpt_disk x.img 64M
'

test_done
