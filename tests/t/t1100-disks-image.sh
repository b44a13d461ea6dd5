#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
test_description='imager disks on disk-image files: GPT, MBR, 4Kn, blank, damaged and grown GPT'
. "$(dirname "$0")/../lib/test-lib.sh"
. "$TESTS_DIR/lib/disks.sh"

# j FILTER: jq -r on the last JSON output (out.json)
j() { jq -r "$@" out.json; }
disks_json() { "$IMAGER" disks --json "$1" >out.json; }

test_expect_success 'build the golden disks' '
	make_gpt_disk gpt.img &&
	make_mbr_disk mbr.img &&
	make_gpt_disk_4kn gpt4k.img &&
	make_blank_disk blank.img 64M
'

test_expect_success 'GPT disk: identity and table as sfdisk reads it' '
	disks_json gpt.img &&
	expect_eq "$(j ".disks | length")" 1 &&
	expect_eq "$(j ".disks[0].node")" gpt.img node &&
	expect_eq "$(j ".disks[0].transport")" file &&
	expect_eq "$(j ".disks[0].size")" "$(stat -c %s gpt.img)" size &&
	expect_eq "$(j ".disks[0].logical_sector_size")" 512 &&
	expect_eq "$(j ".disks[0].system_disk")" false &&
	expect_eq "$(j ".disks[0].backing_file")" null &&
	expect_eq "$(j ".disks[0].pttype")" gpt &&
	expect_eq "$(j ".disks[0].ptuuid")" "$DISKS_GPT_ID" &&
	expect_eq "$(j -c ".disks[0].gpt")" "{\"primary_ok\":true,\"backup_ok\":true,\"backup_misplaced\":false}" &&
	sfdisk --json gpt.img >sf.json &&
	ss=$(jq -r .partitiontable.sectorsize sf.json) &&
	jq -c --argjson ss "$ss" "[.partitiontable.partitions[] |
		{start: (.start * \$ss), size: (.size * \$ss), type, partuuid: .uuid, name}]" sf.json >want &&
	j -c "[.disks[0].partitions[] | {start, size, type, partuuid, name}]" >got &&
	test_cmp want got &&
	expect_eq "$(j -c "[.disks[0].partitions[].number]")" "[1,2,3]" &&
	expect_eq "$(j -c "[.disks[0].partitions[].type_name]")" "[\"BIOS boot\",\"EFI System\",\"Linux filesystem\"]" &&
	expect_eq "$(j ".disks[0].partitions[2].partuuid")" "${DISKS_GPT_PART_UUID_PREFIX}3"
'

test_expect_success 'GPT disk: file systems as blkid, dumpe2fs and mtools see them' '
	disks_json gpt.img &&
	off=$(part_start_bytes gpt.img 3) &&
	dumpe2fs -h "gpt.img?offset=$off" 2>/dev/null >sb &&
	bs=$(sed -n "s/^Block size: *//p" sb) &&
	blocks=$(sed -n "s/^Block count: *//p" sb) &&
	free=$(sed -n "s/^Free blocks: *//p" sb) &&
	expect_eq "$(j ".disks[0].partitions[2].fstype")" ext4 &&
	expect_eq "$(j ".disks[0].partitions[2].uuid")" "$DISKS_GPT_ROOT_UUID" &&
	expect_eq "$(j ".disks[0].partitions[2].label")" root &&
	expect_eq "$(j ".disks[0].partitions[2].fs_free")" $((free * bs)) "ext4 free bytes" &&
	expect_eq "$(j ".disks[0].partitions[2] | .fs_used + .fs_free")" $((blocks * bs)) "ext4 size" &&
	expect_eq "$(j ".disks[0].partitions[2].fs_clean")" true &&
	expect_eq "$(j -c ".disks[0].partitions[2].mountpoints")" "[]" &&
	expect_eq "$(j ".disks[0].partitions[2].in_use")" null &&

	off=$(part_start_bytes gpt.img 2) &&
	eval "$(blkid -p -O "$off" -o export gpt.img | grep -E "^(TYPE|UUID|LABEL)=")" &&
	expect_eq "$(j ".disks[0].partitions[1].fstype")" "$TYPE" &&
	expect_eq "$(j ".disks[0].partitions[1].uuid")" "$UUID" &&
	expect_eq "$(j ".disks[0].partitions[1].label")" "$LABEL" &&
	mfree=$(mdir -i "gpt.img@@$off" :: | sed -n "s/ bytes free//p" | tr -d " ") &&
	expect_eq "$(j ".disks[0].partitions[1].fs_free")" "$mfree" "FAT free bytes" &&
	secs=$(od -An -t u4 --endian=little -j $((off + 0x20)) -N 4 gpt.img | tr -d " ") &&
	bps=$(od -An -t u2 --endian=little -j $((off + 0x0B)) -N 2 gpt.img | tr -d " ") &&
	expect_eq "$(j ".disks[0].partitions[1] | .fs_used + .fs_free")" $((secs * bps)) "FAT size" &&
	expect_eq "$(j ".disks[0].partitions[1].fs_clean")" null &&
	expect_eq "$(j ".disks[0].partitions[0].fstype")" null
'

test_expect_success 'GPT disk: boots under BIOS (GRUB + BIOS-boot partition) and UEFI' '
	disks_json gpt.img &&
	expect_eq "$(j ".disks[0].boot.mbr_code")" grub &&
	expect_eq "$(j ".disks[0].boot.bios_boot_partition")" 1 &&
	expect_eq "$(j ".disks[0].boot.esp")" 2 &&
	j ".disks[0].boot.efi_loaders[]" >loaders &&
	grep -qx EFI/BOOT/BOOTX64.EFI loaders &&
	expect_eq "$(j ".disks[0].boot.bios")" true &&
	expect_eq "$(j ".disks[0].boot.uefi")" true &&
	expect_eq "$(j ".disks[0].boot.mode")" both
'

test_expect_success 'GPT disk: without core.img in the BIOS-boot partition it does not boot BIOS' '
	cp --sparse=always gpt.img nocore.img &&
	off=$(part_start_bytes nocore.img 1) size=$(part_size_bytes nocore.img 1) &&
	dd if=/dev/zero of=nocore.img bs=1M oflag=seek_bytes seek="$off" count=$((size / 1048576)) \
		conv=notrunc status=none &&
	disks_json nocore.img &&
	expect_eq "$(j ".disks[0].boot.mbr_code")" grub &&
	expect_eq "$(j ".disks[0].boot.bios")" false &&
	expect_eq "$(j ".disks[0].boot.mode")" uefi
'

test_expect_success 'ESP with shim layout: loaders listed, BOOTX64.EFI taken for shim' '
	cp --sparse=always gpt.img shim.img &&
	off=$(part_start_bytes shim.img 2) &&
	echo "not really grub" >grubx64.efi &&
	mcopy -i "shim.img@@$off" grubx64.efi ::/EFI/BOOT/grubx64.efi &&
	mmd -i "shim.img@@$off" ::/EFI/debian &&
	mcopy -i "shim.img@@$off" grubx64.efi ::/EFI/debian/grubx64.efi &&
	disks_json shim.img &&
	expect_eq "$(j -c ".disks[0].boot.efi_loaders")" \
		"[\"EFI/BOOT/BOOTX64.EFI\",\"EFI/BOOT/grubx64.efi\",\"EFI/debian/grubx64.efi\"]" &&
	expect_eq "$(j ".disks[0].boot.efi_default_loader")" shim &&
	disks_json gpt.img &&
	expect_eq "$(j -c ".disks[0].boot.efi_loaders")" "[\"EFI/BOOT/BOOTX64.EFI\"]" &&
	expect_eq "$(j ".disks[0].boot.efi_default_loader")" unknown
'

test_expect_success 'ESP without BOOTX64.EFI: not UEFI-bootable' '
	cp --sparse=always gpt.img noefi.img &&
	off=$(part_start_bytes noefi.img 2) &&
	mdel -i "noefi.img@@$off" ::/EFI/BOOT/BOOTX64.EFI &&
	disks_json noefi.img &&
	expect_eq "$(j ".disks[0].boot.esp")" 2 &&
	expect_eq "$(j -c ".disks[0].boot.efi_loaders")" "[]" &&
	expect_eq "$(j ".disks[0].boot.efi_default_loader")" null &&
	expect_eq "$(j ".disks[0].boot.uefi")" false &&
	expect_eq "$(j ".disks[0].boot.mode")" bios
'

test_expect_success 'MBR disk: ext4 + swap, GRUB in the post-MBR gap' '
	disks_json mbr.img &&
	expect_eq "$(j ".disks[0].pttype")" dos &&
	expect_eq "$(j ".disks[0].ptuuid")" "$DISKS_MBR_ID" &&
	expect_eq "$(j ".disks[0].gpt")" null &&
	sfdisk --json mbr.img >sf.json &&
	jq -c "[.partitiontable.partitions[] | {start: (.start * 512), size: (.size * 512),
		type: (\"0x\" + .type), bootable: (.bootable // false)}]" sf.json >want &&
	j -c "[.disks[0].partitions[] | {start, size, type, bootable}]" >got &&
	test_cmp want got &&
	expect_eq "$(j -c "[.disks[0].partitions[].partuuid]")" "[\"6e1d0a6e-01\",\"6e1d0a6e-02\"]" &&
	expect_eq "$(j ".disks[0].partitions[0].fstype")" ext4 &&
	expect_eq "$(j ".disks[0].partitions[0].uuid")" "$DISKS_MBR_ROOT_UUID" &&
	expect_eq "$(j ".disks[0].partitions[1].fstype")" swap &&
	expect_eq "$(j ".disks[0].partitions[1].uuid")" "$DISKS_SWAP_UUID" &&
	expect_eq "$(j ".disks[0].partitions[1].label")" swap &&
	expect_eq "$(j ".disks[0].partitions[1].fs_used")" null &&
	expect_eq "$(j ".disks[0].boot.mbr_code")" grub &&
	expect_eq "$(j ".disks[0].boot.bios_boot_partition")" null &&
	expect_eq "$(j ".disks[0].boot.esp")" null &&
	expect_eq "$(j ".disks[0].boot.bios")" true &&
	expect_eq "$(j ".disks[0].boot.uefi")" false &&
	expect_eq "$(j ".disks[0].boot.mode")" bios
'

test_expect_success 'MBR disk: an empty post-MBR gap does not boot' '
	cp --sparse=always mbr.img nogap.img &&
	dd if=/dev/zero of=nogap.img bs=512 seek=1 count=2047 conv=notrunc status=none &&
	disks_json nogap.img &&
	expect_eq "$(j ".disks[0].boot.mode")" none
'

test_expect_success '4Kn GPT image: 4096-byte sectors, starts in bytes' '
	disks_json gpt4k.img &&
	expect_eq "$(j ".disks[0].logical_sector_size")" 4096 &&
	expect_eq "$(j ".disks[0].pttype")" gpt &&
	expect_eq "$(j ".disks[0].ptuuid")" "$DISKS_GPT_4KN_ID" &&
	for n in 1 2 3; do
		expect_eq "$(j ".disks[0].partitions[$((n - 1))].start")" "$(part_start_bytes gpt4k.img $n)" "p$n start" &&
		expect_eq "$(j ".disks[0].partitions[$((n - 1))].size")" "$(part_size_bytes gpt4k.img $n)" "p$n size" ||
		exit 1
	done &&
	expect_eq "$(j ".disks[0].partitions[2].uuid")" "$DISKS_GPT_4KN_ROOT_UUID" &&
	expect_eq "$(j ".disks[0].partitions[1].fstype")" vfat &&
	expect_eq "$(j ".disks[0].boot.mbr_code")" none &&
	expect_eq "$(j ".disks[0].boot.mode")" uefi
'

test_expect_success 'blank disk: no table, boots nowhere, exit 0' '
	disks_json blank.img &&
	expect_eq "$(j ".disks[0].size")" $((64 * 1048576)) &&
	expect_eq "$(j ".disks[0].pttype")" null &&
	expect_eq "$(j ".disks[0].gpt")" null &&
	expect_eq "$(j ".disks[0].partitions | length")" 0 &&
	expect_eq "$(j ".disks[0].whole_disk.fstype")" null &&
	expect_eq "$(j ".disks[0].boot.mbr_code")" none &&
	expect_eq "$(j ".disks[0].boot.mode")" none
'

test_expect_success 'damaged primary GPT: reported, read from the backup, exit 0' '
	cp --sparse=always gpt.img damaged.img &&
	damage_primary_gpt damaged.img &&
	"$IMAGER" disks --json damaged.img >out.json 2>err &&
	expect_eq "$(j -c ".disks[0].gpt")" "{\"primary_ok\":false,\"backup_ok\":true,\"backup_misplaced\":false}" &&
	expect_eq "$(j ".disks[0].ptuuid")" "$DISKS_GPT_ID" &&
	disks_json gpt.img && mv out.json good.json &&
	"$IMAGER" disks --json damaged.img >out.json &&
	jq -c "[.disks[0].partitions[] | {start, size, partuuid}]" good.json >want &&
	j -c "[.disks[0].partitions[] | {start, size, partuuid}]" >got &&
	test_cmp want got &&
	"$IMAGER" disks damaged.img >text &&
	grep -q "primary DAMAGED, backup ok" text
'

test_expect_success 'damaged 4Kn primary GPT: sector size still found from the backup' '
	cp --sparse=always gpt4k.img damaged4k.img &&
	damage_primary_gpt damaged4k.img &&
	disks_json damaged4k.img &&
	expect_eq "$(j ".disks[0].logical_sector_size")" 4096 &&
	expect_eq "$(j ".disks[0].gpt.primary_ok")" false &&
	expect_eq "$(j ".disks[0].partitions[2].start")" "$(part_start_bytes gpt4k.img 3)"
'

test_expect_success 'grown image: backup GPT not at the end is reported as misplaced' '
	cp --sparse=always gpt.img grown.img &&
	truncate -s +16M grown.img &&
	disks_json grown.img &&
	expect_eq "$(j -c ".disks[0].gpt")" "{\"primary_ok\":true,\"backup_ok\":true,\"backup_misplaced\":true}" &&
	expect_eq "$(j ".disks[0].partitions | length")" 3 &&
	"$IMAGER" disks grown.img >text &&
	grep -q "not at the end of the disk" text
'

test_expect_success 'unpartitioned ext4 image: file system on the whole disk' '
	truncate -s 32M whole.img &&
	mkfs.ext4 -q -F -L wholefs -U 6e1d0a6e-0000-4000-8000-00000000beef whole.img &&
	disks_json whole.img &&
	expect_eq "$(j ".disks[0].pttype")" null &&
	expect_eq "$(j ".disks[0].whole_disk.fstype")" ext4 &&
	expect_eq "$(j ".disks[0].whole_disk.label")" wholefs &&
	expect_eq "$(j ".disks[0].whole_disk.uuid")" 6e1d0a6e-0000-4000-8000-00000000beef &&
	free=$(dumpe2fs -h whole.img 2>/dev/null | sed -n "s/^Free blocks: *//p") &&
	bs=$(dumpe2fs -h whole.img 2>/dev/null | sed -n "s/^Block size: *//p") &&
	expect_eq "$(j ".disks[0].whole_disk.fs_free")" $((free * bs))
'

test_expect_success 'text output matches the golden files' '
	for d in gpt mbr gpt4k blank; do
		"$IMAGER" disks $d.img >$d.txt &&
		test_cmp "$TESTS_DIR/expected/disks-$d.txt" $d.txt || exit 1
	done
'

# the field names and layout are API; the used/free byte counts (asserted
# exactly above) follow the GRUB and e2fsprogs versions, so they are masked
mask_space() {
	jq '(.. | objects | select(has("fs_used")) | .fs_used, .fs_free) |= (if . == null then null else "N" end)' "$@"
}

test_expect_success 'JSON output of the GPT disk matches the golden file' '
	"$IMAGER" disks --json gpt.img >gpt.json &&
	mask_space "$TESTS_DIR/expected/disks-gpt.json" >want &&
	mask_space gpt.json >got &&
	test_cmp want got &&
	grep -q "^   \"disks\": \[" gpt.json
'

test_done
