#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
test_description='the appliance jobs without booting: imager-run (busybox sh, the scripts of
initramfs/rootfs) on loop devices: flash every disk the hints match but the own
medium, family resolution, capture, and refusals'
. "$(dirname "$0")/../lib/test-lib.sh"
. "$TESTS_DIR/lib/disks.sh"

ROOTFS=$TESTS_DIR/../initramfs/rootfs
# a size no other loop device on the machine has: the hints see only ours
S1=$((160 * 1048576 + 5 * 4096 + 1536))

# run_job ARGS...: imager-run as the appliance's shell runs it, with this
# script's "appliance": $TRASH/run/env names the data directory and the own
# medium, and imager is a guard that lets flash write only our loop devices
run_job() {
	IMAGER_LIB_DIR=$ROOTFS/usr/lib/imager IMAGER_RUN_DIR=$TRASH/run \
		busybox sh "$ROOTFS/usr/bin/imager-run" "$@"
}

test_expect_success LOOP 'an "appliance" (data directory, own medium) and three disks of one size' '
	make_gpt_disk golden.img 128M &&
	make_mbr_disk older.img 128M &&
	for d in own t1 t2; do
		make_blank_disk $d.img $S1 &&
		_disks_prng "$d" 1048576 | dd of=$d.img conv=notrunc status=none &&
		loop_attach $d.img >$d.dev || return 1
	done &&
	mkdir -p data/store data/reports run &&
	"$IMAGER" capture older.img --image older --label family=demo --store data/store --progress=none &&
	sleep 1 &&
	"$IMAGER" capture golden.img --image golden --label family=demo --store data/store --progress=none &&
	imager_guard imager-guard &&
	printf "IMAGER=%s\nDATA_DIR=%s\nOWN_DISK=%s\n" "$TRASH/imager-guard" "$TRASH/data" \
		"$(cat own.dev)" >run/env &&
	sha256sum <own.img >own.sha
'

test_expect_success LOOP 'target_all=1: the newest image of the family onto every match but the own medium' '
	run_job imager.action=flash imager.family=demo "imager.target=size=$S1,transport=loop" \
		imager.target_all=1 >out 2>&1 || { cat out; false; } &&
	grep "^IMAGER-RESULT" out >results &&
	cat results &&
	expect_eq "$(grep -c . results)" 2 "result lines" &&
	grep -q "^IMAGER-RESULT ok action=flash image=golden target=$(cat t1.dev) report=reports/.*Z-flash\(-1\)\?.json$" results &&
	grep -q "^IMAGER-RESULT ok action=flash image=golden target=$(cat t2.dev) report=reports/.*Z-flash\(-1\)\?.json$" results &&
	! grep -q "target=$(cat own.dev) " results &&
	expect_eq "$(sha256sum <own.img)" "$(cat own.sha)" &&
	for d in t1 t2; do
		ext4_file_sums $d.img 3 >$d.sums && test_cmp golden.img.root.sums $d.sums || return 1
	done &&
	ls data/reports >reports && expect_eq "$(grep -c . reports)" 2 reports &&
	for r in $(cat reports); do
		expect_eq "$(jq -r .result data/reports/$r)" ok &&
		expect_eq "$(jq -r .image.name data/reports/$r)" golden &&
		expect_eq "$(jq -r ".disks[0].verify" data/reports/$r)" ok || return 1
	done
'

test_expect_success LOOP 'without target_all, two matches are refused; nothing is written' '
	sha256sum <t1.img >t1.sha && sha256sum <t2.img >t2.sha &&
	expect_exit 4 run_job imager.action=flash imager.image=older "imager.target=size=$S1" >out 2>&1 &&
	grep "^REFUSED: target .size=$S1.: 2 disks match .size=$S1.; add hints, or take them all with --all (imager.target_all=1): " out >line &&
	grep -q " $(cat t1.dev) " line && grep -q " $(cat t2.dev) " line && ! grep -q " $(cat own.dev) " line &&
	grep -q "^IMAGER-RESULT error action=flash exit=4 image=older report=reports/" out &&
	expect_eq "$(sha256sum <t1.img)" "$(cat t1.sha)" &&
	expect_eq "$(sha256sum <t2.img)" "$(cat t2.sha)"
'

test_expect_success LOOP 'the own medium, by node or as the only match, is refused' '
	expect_exit 4 run_job imager.action=flash imager.image=older "imager.target=$(cat own.dev)" >out 2>&1 &&
	grep -q "^REFUSED: $(cat own.dev) is the appliance.s own medium" out &&
	expect_exit 4 run_job imager.action=flash imager.image=older \
		"imager.target=size=$S1" "imager.target=$(cat own.dev)" >out 2>&1 &&
	expect_eq "$(sha256sum <own.img)" "$(cat own.sha)"
'

test_expect_success LOOP 'a missing image (5), an unknown family (5), a bad option (2)' '
	expect_exit 5 run_job imager.action=flash imager.image=nope "imager.target=$(cat t1.dev)" >out 2>&1 &&
	grep -q "^REFUSED: there is no image .nope. in $TRASH/data/store" out &&
	expect_exit 5 run_job imager.action=flash imager.family=web "imager.target=$(cat t1.dev)" >out 2>&1 &&
	grep -q "^REFUSED: no image in $TRASH/data/store is labelled family=web" out &&
	expect_exit 2 run_job imager.action=flash imager.target_all=yes >out 2>&1 &&
	grep -q "imager.target_all=yes: want 0 or 1" out &&
	expect_eq "$(sha256sum <t1.img)" "$(cat t1.sha)"
'

test_expect_success LOOP 'capture by node into a new image with a family; an existing name is refused' '
	run_job imager.action=capture "imager.source=$(cat t1.dev)" imager.image=recap \
		imager.family=lab >out 2>&1 || { cat out; false; } &&
	grep -q "^IMAGER-RESULT ok action=capture image=recap source=$(cat t1.dev) report=reports/" out &&
	"$IMAGER" verify recap t1.img --store data/store &&
	"$IMAGER" images describe recap --json --store data/store >d.json &&
	{ expect_eq "$(jq -r ".family // empty" d.json)" lab || jq -r ".labels[]" d.json | grep -qx family=lab; } &&
	expect_exit 4 run_job imager.action=capture "imager.source=$(cat t2.dev)" imager.image=recap >out 2>&1 &&
	grep -q "^REFUSED: an image named .recap. already exists" out
'

test_expect_success LOOP 'every refusal left a report with the request' '
	n=0 &&
	for r in data/reports/*.json; do
		[ "$(jq -r .result "$r")" = error ] || continue
		n=$((n + 1)) &&
		jq -e ".request | length > 0" "$r" >/dev/null &&
		jq -e ".exit_code == 4 or .exit_code == 5" "$r" >/dev/null || return 1
	done &&
	test "$n" -eq 6
'

test_done
