#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
test_description='the appliance refuses, with a clear console message, a report and nothing
written: a missing image (from the kernel command line), its own medium as the
target (by node and by hints), hints matching no disk or two disks'
. "$(dirname "$0")/../lib/test-lib.sh"
. "$TESTS_DIR/lib/disks.sh"
. "$TESTS_DIR/lib/qemu.sh"
. "$TESTS_DIR/lib/appliance.sh"

# 1 boot (OVMF): the first refusal comes from the kernel command line
# (imager.after=shell), the others from the same code through imager-run in
# the shell that follows, then the menu powers off.

test_expect_success 'build the appliance image (qemu_defconfig)' '
	appliance_build &&
	test -s "$APPLIANCE_DIR/imager-usb.img"
'

test_expect_success 'a stick holding image golden-r, two targets of the same size' '
	make_gpt_disk golden.img 256M &&
	: "an unencrypted store: t9530 boots with a key file for an encrypted one" &&
	"$IMAGER" --no-encryption capture golden.img --image golden-r --label family=ref \
		--store host-store --progress=none &&
	appliance_copy stick.img --default flash -- \
		imager.image=does-not-exist imager.target=serial=tgt-a imager.after=shell &&
	data_put stick.img host-store /store &&
	# targets full of recognisable bytes: any write would show
	for t in a b; do
		make_blank_disk tgt-$t.img 256M &&
		_disks_prng "target-$t" 4194304 | dd of=tgt-$t.img conv=notrunc status=none &&
		disk_sha tgt-$t.img >tgt-$t.sha || return 1
	done &&
	cp stick.img stick-before.img
'

test_expect_success QEMU,OVMF 'kernel command line (booted under OVMF): an image that does not exist is refused' '
	test -s stick-before.img &&
	appliance_boot stick.img --input --firmware uefi --log refuse.log -- \
		virtio:tgt-a.img:tgt-a virtio:tgt-b.img:tgt-b &&
	console_expect "IMAGER-READY" "$APPLIANCE_BOOT_TIMEOUT" &&
	echo $((($(date +%s%N) - QEMU_START_NS) / 1000000)) >ready.ms &&
	console_expect "REFUSED: there is no image '\''does-not-exist'\'' in /data/store" 60 &&
	console_expect "Nothing was written." &&
	console_expect "IMAGER-RESULT error action=flash exit=5 image=does-not-exist report=reports/" &&
	console_expect "imager-shell# " 60
'
say "boot to IMAGER-READY under OVMF (GRUB, USB stick): $(cat ready.ms 2>/dev/null) ms"

# run_refused ARGS EXPECTED_EXIT MESSAGE: imager-run in the appliance's shell
run_refused() {
	appliance_resume &&
	qemu_send "imager-run $1; echo rc=\$?" &&
	console_expect "REFUSED: $3" 60 &&
	console_expect "IMAGER-RESULT error action=" &&
	console_expect "rc=$2" &&
	console_expect "imager-shell# "
}

test_expect_success QEMU 'flashing onto the own medium, named by its node, is refused' '
	appliance_resume &&
	own=$(grep -ao "own medium /dev/[a-z0-9]*" refuse.log | head -n 1 | cut -d" " -f3) &&
	test -n "$own" &&
	run_refused "imager.action=flash imager.image=golden-r imager.target=$own" 4 \
		"$own is the appliance'\''s own medium (it holds the IMAGER-DATA partition); it cannot be the target"
'

test_expect_success QEMU 'flashing onto the own medium, named by hints, is refused' '
	run_refused "imager.action=flash imager.image=golden-r imager.target=serial=imager-stick" 4 \
		"target '\''serial=imager-stick'\'': only excluded disks match '\''serial=imager-stick'\'':"
'

test_expect_success QEMU 'hints that match no disk are refused' '
	run_refused "imager.action=flash imager.family=ref imager.target=serial=nope,size=256M" 4 \
		"target '\''serial=nope,size=256M'\'': no disk matches '\''serial=nope,size=256M'\''"
'

test_expect_success QEMU 'hints that match two disks are refused' '
	run_refused "imager.action=flash imager.image=golden-r imager.target=transport=virtio,size=256M" 4 \
		"target '\''transport=virtio,size=256M'\'': 2 disks match '\''transport=virtio,size=256M'\''; add hints, or take them all with --all (imager.target_all=1):"
'

test_expect_success QEMU 'capturing the own medium is refused too; then the menu powers off' '
	appliance_resume &&
	own=$(grep -ao "own medium /dev/[a-z0-9]*" refuse.log | head -n 1 | cut -d" " -f3) &&
	run_refused "imager.action=capture imager.source=$own imager.image=stick" 4 \
		"$own is the appliance'\''s own medium" &&
	qemu_send exit &&
	console_answer "Choice: " p 60 &&
	console_answer "Power off now? [y/N]: " y &&
	qemu_wait_exit 120
'

test_expect_success 'the messages name the disks that matched' '
	tr -d "\r" <refuse.log | grep "^REFUSED: target .transport=virtio,size=256M.: 2 disks match" >line &&
	grep -q " /dev/vd[ab] 256.0 MiB model - serial tgt-a virtio" line &&
	grep -q " /dev/vd[ab] 256.0 MiB model - serial tgt-b virtio" line &&
	tr -d "\r" <refuse.log | grep "^REFUSED: target .serial=imager-stick.: only excluded" >line &&
	grep -q "/dev/sd[a-z]: the appliance.s own medium" line
'

test_expect_success 'nothing was written: targets, the stick outside its data partition, the store' '
	expect_eq "$(disk_sha tgt-a.img)" "$(cat tgt-a.sha)" &&
	expect_eq "$(disk_sha tgt-b.img)" "$(cat tgt-b.sha)" &&
	cmp -n "$(data_offset stick.img)" stick-before.img stick.img &&
	cmp -i "$(data_end stick.img)" stick-before.img stick.img &&
	data_ls stick.img /store/images >images &&
	test "$(cat images)" = golden-r.manifest ||
	{ cat images; false; }
'

test_expect_success 'each refusal left a report: result error, its exit code, its reason' '
	data_ls stick.img /reports >reports &&
	test "$(grep -c . reports)" -eq 6 &&
	: >summary &&
	for r in $(cat reports); do
		data_cat stick.img "/reports/$r" >r.json &&
		jq -r "[.action, .result, .exit_code, .request.target // .request.source, .error] | @tsv" \
			r.json >>summary || return 1
	done &&
	cat summary &&
	test "$(cut -f2 summary | sort -u)" = error &&
	grep -q "^flash	error	5	serial=tgt-a	there is no image .does-not-exist." summary &&
	grep -q "^flash	error	4	/dev/[a-z]*	/dev/[a-z]* is the appliance.s own medium" summary &&
	grep -q "^flash	error	4	serial=imager-stick	.*only excluded disks match" summary &&
	grep -q "^flash	error	4	serial=nope,size=256M	.*no disk matches" summary &&
	grep -q "^flash	error	4	transport=virtio,size=256M	.*2 disks match" summary &&
	grep -q "^capture	error	4	/dev/[a-z]*	/dev/[a-z]* is the appliance.s own medium" summary
'

test_done
