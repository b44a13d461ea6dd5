#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
test_description='the appliance, unattended from its kernel command line: capture a golden
disk into its data partition, flash it by family onto a larger blank disk, and the
flashed disk boots under SeaBIOS and OVMF'
. "$(dirname "$0")/../lib/test-lib.sh"
. "$TESTS_DIR/lib/disks.sh"
. "$TESTS_DIR/lib/qemu.sh"
. "$TESTS_DIR/lib/appliance.sh"

# 4 boots: capture, flash, the flashed disk under SeaBIOS, under OVMF

test_expect_success 'build the appliance image (qemu_defconfig)' '
	appliance_build &&
	test -s "$APPLIANCE_DIR/imager-usb.img"
'

# An older image of the same family, put into the stick's store before the
# boots: flashing by family must take the newest (the one captured in the VM).
test_expect_success GRUB_PC,GRUB_EFI 'golden disk, a decoy, and a stick holding an older image of the family' '
	make_gpt_disk --bootable golden.img 512M &&
	make_mbr_disk decoy.img 300M &&
	: "an unencrypted store: t9530 boots with a key file for an encrypted one" &&
	"$IMAGER" --no-encryption capture decoy.img --image older-demo --label family=demo \
		--store host-store --progress=none &&
	appliance_copy stick.img --default capture -- \
		imager.source=transport=sata,serial=golden-sata imager.image=golden-1 \
		imager.family=demo imager.after=poweroff &&
	data_put stick.img host-store /store &&
	data_ls stick.img /store/images >images.before &&
	grep -q older-demo images.before &&
	disk_sha decoy.img >decoy.sha
'

test_expect_success QEMU 'boot 1: capture the golden disk (SATA, chosen by hints) into the data partition' '
	cp stick.img stick-before-capture.img &&
	appliance_boot stick.img --log capture.log -- \
		ahci:golden.img:golden-sata:snapshot nvme:decoy.img:decoy-nvme &&
	qemu_wait_for IMAGER-READY "$APPLIANCE_BOOT_TIMEOUT" &&
	echo "$QEMU_ELAPSED" >capture.ms &&
	qemu_wait_exit 300 &&
	grep -a "IMAGER-RESULT" capture.log >result.txt &&
	cat result.txt &&
	grep -q "^IMAGER-RESULT ok action=capture image=golden-1 source=/dev/sd[a-z] report=reports/.*-capture.json" result.txt &&
	! grep -a "REFUSED\|FAILED" capture.log
'
say "capture boot (SeaBIOS, GRUB, USB stick): IMAGER-READY after $(cat capture.ms 2>/dev/null) ms"

test_expect_success 'the capture report says what happened' '
	data_ls stick.img /reports >reports &&
	test "$(grep -c . reports)" -eq 1 &&
	data_cat stick.img "/reports/$(cat reports)" >capture.json &&
	expect_eq "$(json_get capture.json .action)" capture &&
	expect_eq "$(json_get capture.json .result)" ok &&
	expect_eq "$(json_get capture.json .image.name)" golden-1 &&
	expect_eq "$(json_get capture.json ".disks | length")" 1 &&
	expect_eq "$(json_get capture.json ".disks[0].serial")" golden-sata &&
	expect_eq "$(json_get capture.json ".disks[0].size")" 536870912 &&
	expect_eq "$(json_get capture.json .machine.vendor)" QEMU &&
	json_get capture.json .image.digest | grep -Eq "^[0-9a-f]{64}$" &&
	test "$(json_get capture.json ".disks[0].data_bytes")" -gt 0
'

test_expect_success 'the captured image in the store is the golden disk, in family demo' '
	data_rdump stick.img /store out &&
	"$IMAGER" images describe golden-1 --json --store out/store >describe.json &&
	{ # the family field, or the label family=NAME (imager without families)
		expect_eq "$(json_get describe.json ".family // empty")" demo ||
		json_get describe.json ".labels[]" | grep -qx family=demo; } &&
	expect_eq "$(json_get describe.json .digest)" "$(json_get capture.json .image.digest)" &&
	"$IMAGER" verify golden-1 golden.img --store out/store &&
	test "$(data_ls stick.img /store/images | grep -c .)" -eq 2
'

test_expect_success 'the capture wrote nothing on the stick outside its data partition, nor on the decoy' '
	off=$(data_offset stick.img) &&
	cmp -n "$off" stick-before-capture.img stick.img &&
	cmp -i "$(data_end stick.img)" stick-before-capture.img stick.img &&
	expect_eq "$(disk_sha decoy.img)" "$(cat decoy.sha)"
'

test_expect_success QEMU 'boot 2: flash the newest image of family demo onto a larger blank disk' '
	test -s capture.json &&
	make_blank_disk blank.img 1G &&
	bash "$APPLIANCE_TOP/boot/set-local-cfg.sh" stick.img --default flash --timeout 0 -- \
		imager.family=demo imager.target=transport=virtio,size=1G- imager.after=poweroff \
		>/dev/null &&
	appliance_boot stick.img --log flash.log -- virtio:blank.img:blank-1 &&
	qemu_wait_for IMAGER-READY "$APPLIANCE_BOOT_TIMEOUT" &&
	echo "$QEMU_ELAPSED" >flash.ms &&
	qemu_wait_exit 300 &&
	grep -a "IMAGER-RESULT" flash.log >result.txt &&
	cat result.txt &&
	grep -q "^IMAGER-RESULT ok action=flash image=golden-1 target=/dev/vda report=reports/.*-flash.json" result.txt
'
say "flash boot (SeaBIOS, GRUB, USB stick): IMAGER-READY after $(cat flash.ms 2>/dev/null) ms"

test_expect_success 'the flash report says what happened' '
	data_cat stick.img "/reports/$(data_ls stick.img /reports | grep -- -flash.json)" >flash.json &&
	expect_eq "$(json_get flash.json .result)" ok &&
	expect_eq "$(json_get flash.json .image.name)" golden-1 &&
	expect_eq "$(json_get flash.json .image.digest)" "$(json_get capture.json .image.digest)" &&
	expect_eq "$(json_get flash.json ".disks[0].serial")" blank-1 &&
	expect_eq "$(json_get flash.json ".disks[0].size")" 1073741824 &&
	expect_eq "$(json_get flash.json ".disks[0].verify")" ok &&
	test "$(json_get flash.json ".disks[0].verified_bytes")" -gt 0
'

test_expect_success 'the flashed disk holds the golden files and verifies against the image' '
	ext4_file_sums blank.img 3 >root.sums &&
	test_cmp golden.img.root.sums root.sums &&
	fat_file_sums blank.img 2 >esp.sums &&
	test_cmp golden.img.esp.sums esp.sums &&
	cmp -n 440 golden.img blank.img &&
	"$IMAGER" verify golden-1 blank.img --store out/store
'

test_expect_success QEMU,GRUB_PC 'boot 3: the flashed disk boots alone under SeaBIOS' '
	test -s root.sums &&
	qemu_boot_disk blank.img --firmware bios --snapshot --log bios.log \
		--expect "IMAGER-BOOT-OK $(cat golden.img.payload.sha256)" &&
	grep -aq "IMAGER-BOOT-INFO firmware=bios" bios.log
'

test_expect_success QEMU,OVMF,GRUB_EFI 'boot 4: the flashed disk boots alone under OVMF' '
	test -s root.sums &&
	qemu_boot_disk blank.img --firmware uefi --snapshot --log uefi.log \
		--expect "IMAGER-BOOT-OK $(cat golden.img.payload.sha256)" &&
	grep -aq "IMAGER-BOOT-INFO firmware=uefi" uefi.log
'

test_done
