#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
test_description='appliance trust without booting: imager-run with baked trusted keys on loop devices'
. "$(dirname "$0")/../lib/test-lib.sh"

ROOTFS=$TESTS_DIR/../initramfs/rootfs
export IMAGER_STORE=$TRASH/data/store

# run_job KEYDIR ARGS...: imager-run as the appliance runs it, trusting the keys in KEYDIR
# (the build puts APPLIANCE_TRUSTED_KEYS there); imager is a guard that lets flash write
# only this script's loop devices
run_job() {
	local keys=$1
	shift
	APPLIANCE_TRUSTED_KEYS_DIR=$keys IMAGER_LIB_DIR=$ROOTFS/usr/lib/imager \
		IMAGER_RUN_DIR=$TRASH/run busybox sh "$ROOTFS/usr/bin/imager-run" "$@"
}

test_expect_success LOOP 'signed and unsigned images, a fleet key, an own medium and a target' '
	mkdir -p src data/store data/reports run keys empty &&
	echo fleet >src/motd &&
	truncate -s 64M golden.img &&
	printf "label: dos\nstart=1MiB, type=83\n" | sfdisk -q golden.img &&
	mkfs.ext4 -q -F -E offset=1048576 -d src golden.img 60M &&
	"$IMAGER" keys generate --output fleet >/dev/null &&
	"$IMAGER" keys generate --output other >/dev/null &&
	cp fleet.pub keys/ &&
	"$IMAGER" capture golden.img --image signed --sign-key fleet.key --progress=none >/dev/null &&
	"$IMAGER" capture golden.img --image plain --progress=none >/dev/null &&
	"$IMAGER" capture golden.img --image foreign --sign-key other.key --progress=none >/dev/null &&
	for d in own t1; do
		truncate -s 64M $d.img && head -c 1M /dev/urandom | dd of=$d.img conv=notrunc status=none &&
		loop_attach $d.img >$d.dev || return 1
	done &&
	imager_guard imager-guard &&
	printf "IMAGER=%s\nDATA_DIR=%s\nOWN_DISK=%s\n" "$TRASH/imager-guard" "$TRASH/data" \
		"$(cat own.dev)" >run/env
'

test_expect_success LOOP 'with the fleet key baked in: unsigned and foreign-signed images are refused, untouched' '
	sha256sum <t1.img >t1.sha &&
	for image in plain foreign; do
		expect_exit 4 run_job "$TRASH/keys" imager.action=flash imager.image=$image \
			"imager.target=$(cat t1.dev)" >out 2>&1 || { cat out; return 1; }
		grep -q "Refusing to flash .$image.: it is not signed by a trusted key." out &&
		grep -q "^IMAGER-RESULT error action=flash .*image=$image" out &&
		expect_eq "$(sha256sum <t1.img)" "$(cat t1.sha)" || { cat out; return 1; }
	done
'

test_expect_success LOOP 'with the fleet key baked in: the signed image is flashed and verified' '
	run_job "$TRASH/keys" imager.action=flash imager.image=signed "imager.target=$(cat t1.dev)" \
		>out 2>&1 || { cat out; false; } &&
	grep -q "^IMAGER-RESULT ok action=flash image=signed target=$(cat t1.dev)" out &&
	grep -q "is signed by trusted key $("$IMAGER" keys id fleet.pub)" out &&
	"$IMAGER" verify signed "$(cat t1.dev)" --store data/store
'

test_expect_success LOOP 'without baked keys there is no policy: the unsigned image flashes' '
	run_job "$TRASH/empty" imager.action=flash imager.image=plain "imager.target=$(cat t1.dev)" \
		>out 2>&1 || { cat out; false; } &&
	grep -q "^IMAGER-RESULT ok action=flash image=plain" out &&
	! grep -q "trusted key" out
'

test_done
