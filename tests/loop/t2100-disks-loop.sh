#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
test_description='imager disks on loop devices: boot awareness, 4Kn, usage (mounted, swap), listing'
. "$(dirname "$0")/../lib/test-lib.sh"
. "$TESTS_DIR/lib/disks.sh"

test_have_prereq LOOP || skip_all "needs root and loop devices"

# swap areas this script enabled: disabled before test-lib detaches the loops
: >"$TRASH/.swaps"
disks_cleanup() {
	local s
	[ -f "$TRASH/.swaps" ] || return 0 # test_done cleaned up already
	while read -r s; do
		[ -n "$s" ] && swapoff "$s" 2>/dev/null
	done <"$TRASH/.swaps"
	: >"$TRASH/.swaps"
	test_cleanup
}
trap 'disks_cleanup' EXIT
trap 'disks_cleanup; exit 130' INT TERM

j() { jq -r "$@" out.json; }
disks_json() { "$IMAGER" disks --json "$1" >out.json; }

test_expect_success LOOP 'build the golden disks and attach them' '
	make_gpt_disk gpt.img &&
	make_mbr_disk mbr.img &&
	make_gpt_disk_4kn gpt4k.img &&
	make_blank_disk blank.img 64M &&
	cp --sparse=always gpt.img damaged.img && damage_primary_gpt damaged.img &&
	sha256sum gpt.img gpt4k.img blank.img damaged.img >images.sha256 &&
	loop_attach gpt.img >gpt.dev &&
	loop_attach mbr.img >mbr.dev &&
	loop_attach gpt4k.img 4096 >gpt4k.dev &&
	loop_attach blank.img >blank.dev &&
	loop_attach damaged.img >damaged.dev
'

test_expect_success LOOP 'GPT disk with GRUB on a loop device: BIOS and UEFI' '
	dev=$(cat gpt.dev) &&
	disks_json "$dev" &&
	expect_eq "$(j ".disks[0].node")" "$dev" &&
	expect_eq "$(j ".disks[0].transport")" loop &&
	expect_eq "$(j ".disks[0].backing_file")" "$TRASH/gpt.img" &&
	expect_eq "$(j ".disks[0].size")" "$(blockdev --getsize64 "$dev")" &&
	expect_eq "$(j ".disks[0].logical_sector_size")" "$(blockdev --getss "$dev")" &&
	expect_eq "$(j ".disks[0].physical_sector_size")" "$(blockdev --getpbsz "$dev")" &&
	expect_eq "$(j ".disks[0].read_only")" false &&
	expect_eq "$(j ".disks[0].system_disk")" false &&
	expect_eq "$(j ".disks[0].pttype")" gpt &&
	expect_eq "$(j ".disks[0].ptuuid")" "$DISKS_GPT_ID" &&
	sfdisk --json "$dev" >sf.json &&
	jq -c "[.partitiontable.partitions[] | {start: (.start * 512), size: (.size * 512),
		partuuid: .uuid, type}]" sf.json >want &&
	j -c "[.disks[0].partitions[] | {start, size, partuuid, type}]" >got &&
	test_cmp want got &&
	expect_eq "$(j ".disks[0].boot.mbr_code")" grub &&
	expect_eq "$(j ".disks[0].boot.bios_boot_partition")" 1 &&
	expect_eq "$(j ".disks[0].boot.esp")" 2 &&
	j ".disks[0].boot.efi_loaders[]" | grep -qx EFI/BOOT/BOOTX64.EFI &&
	expect_eq "$(j ".disks[0].boot.mode")" both &&
	expect_eq "$(j ".disks[0].partitions[2].fstype")" ext4 &&
	expect_eq "$(j ".disks[0].partitions[2].uuid")" "$DISKS_GPT_ROOT_UUID" &&
	expect_eq "$(j ".disks[0].partitions[2].node")" null "partition node without partx -a"
'

test_expect_success LOOP 'GPT loop device: text output matches the golden file' '
	# rotational: the kernel copies it from the disk behind the backing file
	"$IMAGER" disks "$(cat gpt.dev)" | normalize | sed "/^    rotational:/d" >gpt.txt &&
	test_cmp "$TESTS_DIR/expected/disks-loop-gpt.txt" gpt.txt &&
	# its block in the listing (the short form): from its header to the blank line
	"$IMAGER" disks >list.txt &&
	awk -v d="$(cat gpt.dev)" "\$1 == d { p = 1 } p && /^\$/ { exit } p" list.txt |
		normalize >list-gpt.txt &&
	test_cmp "$TESTS_DIR/expected/disks-loop-list-gpt.txt" list-gpt.txt
'

test_expect_success LOOP 'MBR disk with ext4 + swap on a loop device: BIOS only' '
	dev=$(cat mbr.dev) &&
	disks_json "$dev" &&
	expect_eq "$(j ".disks[0].pttype")" dos &&
	expect_eq "$(j ".disks[0].ptuuid")" "$DISKS_MBR_ID" &&
	expect_eq "$(j ".disks[0].boot.mbr_code")" grub &&
	expect_eq "$(j ".disks[0].boot.mode")" bios &&
	expect_eq "$(j ".disks[0].partitions[0].bootable")" true &&
	expect_eq "$(j ".disks[0].partitions[1].fstype")" swap &&
	expect_eq "$(j ".disks[0].partitions[1].uuid")" "$DISKS_SWAP_UUID" &&
	expect_eq "$(j ".disks[0].partitions[1].label")" swap &&
	expect_eq "$(j ".disks[0].partitions[1].in_use")" null
'

test_expect_success LOOP '4Kn loop device: 4096-byte sectors, partition starts in bytes' '
	dev=$(cat gpt4k.dev) &&
	expect_eq "$(blockdev --getss "$dev")" 4096 &&
	disks_json "$dev" &&
	expect_eq "$(j ".disks[0].logical_sector_size")" 4096 &&
	sfdisk --json "$dev" >sf.json &&
	expect_eq "$(jq .partitiontable.sectorsize sf.json)" 4096 &&
	jq -c "[.partitiontable.partitions[] | {start: (.start * 4096), size: (.size * 4096)}]" sf.json >want &&
	j -c "[.disks[0].partitions[] | {start, size}]" >got &&
	test_cmp want got &&
	expect_eq "$(j ".disks[0].partitions[2].start")" "$(part_start_bytes gpt4k.img 3)" &&
	expect_eq "$(j ".disks[0].partitions[2].fstype")" ext4 &&
	expect_eq "$(j ".disks[0].partitions[1].fstype")" vfat &&
	expect_eq "$(j ".disks[0].boot.mode")" uefi
'

test_expect_success LOOP 'blank loop device: no partition table, boots nowhere' '
	disks_json "$(cat blank.dev)" &&
	expect_eq "$(j ".disks[0].pttype")" null &&
	expect_eq "$(j ".disks[0].partitions | length")" 0 &&
	expect_eq "$(j ".disks[0].boot.mode")" none
'

test_expect_success LOOP 'damaged primary GPT on a loop device: reported, exit 0' '
	disks_json "$(cat damaged.dev)" &&
	expect_eq "$(j ".disks[0].gpt.primary_ok")" false &&
	expect_eq "$(j ".disks[0].gpt.backup_ok")" true &&
	expect_eq "$(j ".disks[0].partitions | length")" 3 &&
	expect_eq "$(j ".disks[0].partitions[2].uuid")" "$DISKS_GPT_ROOT_UUID"
'

test_expect_success LOOP 'a mounted ext4 partition is in use, with its mount point' '
	dev=$(cat gpt.dev) &&
	loop_partitions "$dev" &&
	mkdir -p mnt &&
	mount -o ro "${dev}p3" mnt && register_mount "$TRASH/mnt" &&
	disks_json "$dev" &&
	expect_eq "$(j ".disks[0].partitions[2].node")" "${dev}p3" &&
	expect_eq "$(j ".disks[0].partitions[2].in_use")" mounted &&
	expect_eq "$(j -c ".disks[0].partitions[2].mountpoints")" "[\"$TRASH/mnt\"]" &&
	expect_eq "$(j ".disks[0].partitions[1].in_use")" null &&
	expect_eq "$(j ".disks[0].in_use_reason")" "${dev}p3 is mounted on $TRASH/mnt" &&
	dumpe2fs -h "${dev}p3" 2>/dev/null >sb &&
	bs=$(sed -n "s/^Block size: *//p" sb) &&
	blocks=$(sed -n "s/^Block count: *//p" sb) &&
	free=$(sed -n "s/^Free blocks: *//p" sb) &&
	expect_eq "$(j ".disks[0].partitions[2].fs_used")" $(((blocks - free) * bs)) "used bytes" &&
	"$IMAGER" disks | grep -A8 "^$dev " | grep -q " $TRASH/mnt\$" &&
	umount mnt &&
	disks_json "$dev" &&
	expect_eq "$(j ".disks[0].partitions[2].in_use")" null &&
	expect_eq "$(j ".disks[0].in_use_reason")" null
'

test_expect_success LOOP 'a partition node is refused: exit 7' '
	dev=$(cat gpt.dev) &&
	rc=0 && "$IMAGER" disks "${dev}p3" 2>err || rc=$? &&
	expect_eq $rc 7 && grep -q "is a partition, not a whole disk" err
'

test_expect_success LOOP 'an active swap partition is in use' '
	dev=$(cat mbr.dev) &&
	loop_partitions "$dev" &&
	swapon "${dev}p2" && echo "${dev}p2" >>"$TRASH/.swaps" &&
	disks_json "$dev" &&
	expect_eq "$(j ".disks[0].partitions[1].in_use")" swap &&
	expect_eq "$(j ".disks[0].in_use_reason")" "${dev}p2 is an active swap area" &&
	swapoff "${dev}p2" && : >"$TRASH/.swaps" &&
	disks_json "$dev" &&
	expect_eq "$(j ".disks[0].partitions[1].in_use")" null
'

test_expect_success LOOP 'a mounted unpartitioned loop device: mount points of the whole disk' '
	truncate -s 32M whole.img &&
	mkfs.ext4 -q -F -L wholefs whole.img &&
	dev=$(loop_attach whole.img) &&
	mkdir -p wmnt &&
	mount -o ro "$dev" wmnt && register_mount "$TRASH/wmnt" &&
	disks_json "$dev" &&
	expect_eq "$(j ".disks[0].whole_disk.fstype")" ext4 &&
	expect_eq "$(j ".disks[0].whole_disk.label")" wholefs &&
	expect_eq "$(j -c ".disks[0].whole_disk.mountpoints")" "[\"$TRASH/wmnt\"]" &&
	expect_eq "$(j ".disks[0].whole_disk.in_use")" mounted &&
	umount wmnt
'

test_expect_success LOOP,ROOT 'a device node nobody may open, as nobody: exit 6' '
	dev=$(cat blank.dev) &&
	mknod locked-node b $((0x$(stat -c %t "$dev"))) $((0x$(stat -c %T "$dev"))) &&
	chmod 000 locked-node && chmod 755 "$TRASH" &&
	rc=0 && setpriv --reuid=nobody --regid=nogroup --clear-groups \
		"$IMAGER" disks "$TRASH/locked-node" 2>err || rc=$? &&
	expect_eq $rc 6 && expect_eq "$(wc -l <err)" 1 && grep -q "Permission denied" err
'

test_expect_success LOOP 'listing: our loop devices, the system disk, no unattached loops' '
	free=$(losetup -f) &&
	"$IMAGER" disks --json >out.json &&
	for f in gpt mbr gpt4k blank damaged; do
		dev=$(cat $f.dev) &&
		expect_eq "$(j --arg d "$dev" ".disks[] | select(.node == \$d) | .backing_file")" \
			"$TRASH/$f.img" "backing file of $dev" || exit 1
	done &&
	expect_eq "$(j --arg d "$(cat gpt4k.dev)" ".disks[] | select(.node == \$d) | .logical_sector_size")" 4096 &&
	# the disk holding /, found independently of the imager
	src=$(findmnt -n -o SOURCE /) &&
	whole=$(lsblk -n -d -o PKNAME "$src" 2>/dev/null || true) &&
	sysdisk=/dev/${whole:-$(basename "$src")} &&
	expect_eq "$(j --arg d "$sysdisk" ".disks[] | select(.node == \$d) | .system_disk")" true "system_disk of $sysdisk" &&
	expect_eq "$(j "[.disks[] | select(.system_disk)] | length")" 1 "number of system disks" &&
	expect_eq "$(j --arg d "$sysdisk" ".disks[] | select(.node == \$d) | .whole_disk.mountpoints | index(\"/\") != null")" true &&
	# an unattached loop device is hidden (unless someone attached it meanwhile)
	if [ ! -e "/sys/block/${free#/dev/}/loop/backing_file" ]; then
		expect_eq "$(j --arg d "$free" "[.disks[] | select(.node == \$d)] | length")" 0 "listed $free"
	fi &&
	expect_eq "$(j "[.disks[] | select(.transport == \"loop\" and .backing_file == null)] | length")" 0 &&
	expect_eq "$(j "[.disks[].node | select(test(\"^/dev/z?ram\"))] | length")" 0 &&
	"$IMAGER" disks >list.txt &&
	grep -q "^$sysdisk .*SYSTEM DISK" list.txt
'

test_expect_success LOOP 'imager disks wrote nothing: the images are unchanged (mbr.img held swap)' '
	sha256sum -c --quiet images.sha256
'

test_done
