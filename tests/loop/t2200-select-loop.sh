#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
test_description='imager select on loop devices: hints that match one, two or no disks,
--all, --exclude by disk and by partition, and a DEVICE argument'
. "$(dirname "$0")/../lib/test-lib.sh"

# Sizes no other loop device on the machine has (tests run in parallel):
# exact-size hints then see only this script's disks.
S1=$((96 * 1048576 + 7 * 4096 + 512))
S2=$((80 * 1048576 + 3 * 4096 + 1024))

test_expect_success LOOP 'three loop devices: two of one size, one of another with a GPT' '
	truncate -s $S1 a.img && truncate -s $S1 b.img && truncate -s $S2 c.img &&
	printf "label: gpt\nstart=1MiB, size=16MiB, type=L\n" | sfdisk -q c.img &&
	loop_attach a.img >a.dev && loop_attach b.img >b.dev && loop_attach c.img >c.dev &&
	loop_partitions "$(cat c.dev)" &&
	sort -V a.dev b.dev >ab.sorted
'

test_expect_success LOOP 'hints matching two disks are refused (4), listing both' '
	expect_exit 4 "$IMAGER" select size=$S1 >out 2>err &&
	test ! -s out &&
	grep -q "Refusing: 2 disks match .size=$S1.; add hints, or take them all with --all:" err &&
	grep -q "^  $(cat a.dev)  .*loop$" err &&
	grep -q "^  $(cat b.dev)  .*loop$" err
'

test_expect_success LOOP '--all prints every match, one node per line, sorted' '
	"$IMAGER" select --all size=$S1,transport=loop >out &&
	test_cmp ab.sorted out
'

test_expect_success LOOP '--exclude leaves one: it is printed' '
	"$IMAGER" select size=$S1 --exclude "$(cat a.dev)" >out &&
	test_cmp b.dev out &&
	"$IMAGER" select "size=$((S1 - 512))-$((S1 + 512))" -x "$(cat b.dev)" >out &&
	test_cmp a.dev out
'

test_expect_success LOOP 'all hints must match; a wrong transport matches nothing' '
	expect_exit 4 "$IMAGER" select size=$S1,transport=usb >out 2>err &&
	test ! -s out &&
	grep -q "no disk matches .size=$S1,transport=usb." err
'

test_expect_success LOOP 'a DEVICE is printed, unless it is excluded (4) or a partition (7)' '
	"$IMAGER" select "$(cat c.dev)" >out &&
	test_cmp c.dev out &&
	expect_exit 4 "$IMAGER" select "$(cat c.dev)" --exclude "$(cat c.dev)" 2>err &&
	grep -q "Refusing .$(cat c.dev).: it is excluded." err &&
	expect_exit 7 "$IMAGER" select "$(cat c.dev)p1" 2>err &&
	grep -q "is a partition, not a whole disk" err
'

test_expect_success LOOP '--exclude PARTITION excludes the disk holding it' '
	expect_exit 4 "$IMAGER" select "$(cat c.dev)" --exclude "$(cat c.dev)p1" 2>err &&
	expect_exit 4 "$IMAGER" select size=$S2 --exclude "$(cat c.dev)p1" 2>err &&
	grep -q "Refusing: only excluded disks match .size=$S2.:" err &&
	grep -q "^  $(cat c.dev): it is excluded" err
'

test_expect_success LOOP 'nothing was written to the disks' '
	test "$(cat a.img | sha256sum)" = "$(head -c $S1 /dev/zero | sha256sum)" &&
	test "$(cat b.img | sha256sum)" = "$(head -c $S1 /dev/zero | sha256sum)"
'

test_done
