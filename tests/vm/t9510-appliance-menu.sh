#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
test_description='the appliance menu, driven through the serial console: capture a disk,
then flash the image (by family, growing it) onto another, then power off'
. "$(dirname "$0")/../lib/test-lib.sh"
. "$TESTS_DIR/lib/disks.sh"
. "$TESTS_DIR/lib/qemu.sh"
. "$TESTS_DIR/lib/appliance.sh"

# 1 boot: the stick's default GRUB entry (the menu), as a person would boot it

test_expect_success 'build the appliance image (qemu_defconfig)' '
	appliance_build &&
	test -s "$APPLIANCE_DIR/imager-usb.img"
'

test_expect_success GRUB_PC,GRUB_EFI 'a golden disk, a blank target, a stick' '
	make_gpt_disk --bootable golden.img 512M &&
	make_blank_disk target.img 768M &&
	appliance_copy stick.img &&
	cp stick.img stick-before.img
'

test_expect_success QEMU 'the menu comes up on the serial console, listing the disks' '
	test -s stick.img &&
	appliance_boot stick.img --input --log menu.log -- \
		ahci:golden.img:golden-sata:snapshot nvme:target.img:target-nvme &&
	console_expect "IMAGER-READY" "$APPLIANCE_BOOT_TIMEOUT" &&
	console_expect "Choice: " 60 &&
	echo $((($(date +%s%N) - QEMU_START_NS) / 1000000)) >menu.ms &&
	grep -aq "serial golden-sata" menu.log &&
	grep -aq "serial target-nvme" menu.log &&
	grep -aq "serial imager-stick  \[appliance medium\]" menu.log
'
say "boot to menu: $(cat menu.ms 2>/dev/null) ms (SeaBIOS, GRUB timeout 1 s, USB stick, TCG)"

test_expect_success QEMU 'capture from the menu: source, name, family, confirmation, result screen' '
	appliance_resume &&
	qemu_send c &&
	console_expect "Disks that can be the source:" 30 &&
	console_choose "Source disk number (q to cancel): " "serial golden-sata," &&
	console_answer "Image name [capture-" menu-golden &&
	console_answer "Family (a label family=NAME, empty for none): " lab &&
	: "a new store is encrypted: its passphrase, typed twice, never echoed" &&
	console_answer "New passphrase: " "$IMAGER_PASSPHRASE" &&
	console_answer "Repeat it: " "$IMAGER_PASSPHRASE" &&
	console_expect "Capture /dev/sd" &&
	console_expect "serial golden-sata, 512.0 MiB)" &&
	console_answer "Type yes to capture: " yes &&
	console_expect "IMAGER-RESULT ok action=capture image=menu-golden source=/dev/sd" 300 &&
	console_expect " RESULT: OK" &&
	console_expect "Captured /dev/sd" &&
	console_answer "Press Enter to return to the menu: " ""
'

test_expect_success QEMU 'flash from the menu: newest of the family, target, grow, confirmation' '
	appliance_resume &&
	console_answer "Choice: " f 60 &&
	console_expect "menu-golden" &&
	console_answer "Image number, or @FAMILY for the newest of a family (q to cancel): " @lab &&
	console_expect "Image: menu-golden (newest of family lab)" &&
	console_choose "Target disk number (q to cancel): " "serial target-nvme," &&
	console_answer "Grow the last partition to fill the disk? [y/N]: " y &&
	console_expect "WARNING: this erases everything on /dev/nvme0n1 (model QEMU NVMe Ctrl, serial target-nvme, 768.0 MiB)" &&
	console_answer "Type yes to flash: " yes &&
	console_expect "IMAGER-RESULT ok action=flash image=menu-golden target=/dev/nvme0n1" 300 &&
	console_expect " RESULT: OK" &&
	console_answer "Press Enter to return to the menu: " "" &&
	console_answer "Choice: " p 60 &&
	console_answer "Power off now? [y/N]: " y &&
	qemu_wait_exit 120
'

test_expect_success 'the target holds the golden files, its last partition grown to the end' '
	ext4_file_sums target.img 3 >root.sums &&
	test_cmp golden.img.root.sums root.sums &&
	fat_file_sums target.img 2 >esp.sums &&
	test_cmp golden.img.esp.sums esp.sums &&
	test "$(part_size_bytes target.img 3)" -gt "$(part_size_bytes golden.img 3)" &&
	end=$(($(part_start_bytes target.img 3) + $(part_size_bytes target.img 3))) &&
	test $((768 * 1048576 - end)) -le 1048576 &&
	# the file system was grown too, not only the partition
	blocks=$(debugfs -R stats "target.img?offset=$(part_start_bytes target.img 3)" 2>/dev/null |
		sed -n "s/^Block count: *//p") &&
	bsize=$(debugfs -R stats "target.img?offset=$(part_start_bytes target.img 3)" 2>/dev/null |
		sed -n "s/^Block size: *//p") &&
	psize=$(part_size_bytes target.img 3) &&
	test $((blocks * bsize)) -gt $((psize - bsize))
'

test_expect_success 'both runs left a report; the image carries family=lab' '
	data_ls stick.img /reports >reports &&
	test "$(grep -c . reports)" -eq 2 &&
	data_cat stick.img "/reports/$(grep -- -capture.json reports)" >capture.json &&
	data_cat stick.img "/reports/$(grep -- -flash.json reports)" >flash.json &&
	expect_eq "$(json_get capture.json .result)" ok &&
	expect_eq "$(json_get capture.json ".disks[0].serial")" golden-sata &&
	expect_eq "$(json_get flash.json .result)" ok &&
	expect_eq "$(json_get flash.json .image.name)" menu-golden &&
	expect_eq "$(json_get flash.json ".disks[0].serial")" target-nvme &&
	expect_eq "$(json_get flash.json ".disks[0].verify")" ok &&
	data_rdump stick.img /store out &&
	grep -qx "encryption=aes-256-gcm" out/store/config &&
	"$IMAGER" images describe menu-golden --json --store out/store >describe.json &&
	{ # the family field, or the label family=NAME (imager without families)
		expect_eq "$(json_get describe.json ".family // empty")" lab ||
		json_get describe.json ".labels[]" | grep -qx family=lab; }
'

test_expect_success 'nothing on the stick changed outside its data partition' '
	cmp -n "$(data_offset stick.img)" stick-before.img stick.img &&
	cmp -i "$(data_end stick.img)" stick-before.img stick.img
'

test_done
