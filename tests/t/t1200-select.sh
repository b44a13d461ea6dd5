#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
test_description='imager select: command line and hint errors, devices that are not disks
(no disk is written or needed; matching real disks is in tests/loop/t2200)'
. "$(dirname "$0")/../lib/test-lib.sh"

test_expect_success 'bad hints are usage errors (exit 2) that name the problem' '
	expect_exit 2 "$IMAGER" select colour=red 2>err &&
	grep -q "bad hints .colour=red.: unknown key (serial, wwn, model, size, transport, rotational)" err &&
	expect_exit 2 "$IMAGER" select size=2G-1G 2>err &&
	grep -q "bad size: want N, MIN-MAX, MIN- or -MAX" err &&
	expect_exit 2 "$IMAGER" select rotational=maybe 2>err &&
	grep -q "rotational must be 0 or 1" err &&
	expect_exit 2 "$IMAGER" select serial=a,serial=b 2>err &&
	grep -q "a key is given twice" err &&
	expect_exit 2 "$IMAGER" select "" 2>err &&
	grep -q "no hints given" err
'

test_expect_success 'one HINTS argument, known options only' '
	expect_exit 2 "$IMAGER" select 2>err &&
	grep -q "exactly one HINTS or DEVICE argument is required" err &&
	expect_exit 2 "$IMAGER" select serial=a serial=b 2>err &&
	expect_exit 2 "$IMAGER" select --bogus serial=a 2>err &&
	grep -q "unknown option .--bogus." err &&
	"$IMAGER" select --help >help &&
	grep -q "model=GLOB-OR-SUBSTRING" help
'

test_expect_success 'a DEVICE that does not exist (5) or is not a block device (7)' '
	expect_exit 5 "$IMAGER" select "$TRASH/nothing-here" 2>err &&
	grep -q "does not exist" err &&
	expect_exit 7 "$IMAGER" select /dev/null 2>err &&
	grep -q "./dev/null. is not a block device" err &&
	truncate -s 1M file.img &&
	expect_exit 7 "$IMAGER" select "$TRASH/file.img" 2>err
'

test_expect_success 'hints no disk can match: refused (4), the hints named, nothing on stdout' '
	expect_exit 4 "$IMAGER" select serial=imager-t1200-no-such-serial >out 2>err &&
	test ! -s out &&
	grep -q "no disk matches .serial=imager-t1200-no-such-serial. (.* looked at)" err &&
	expect_exit 4 "$IMAGER" select --all size=1 >out 2>err &&
	test ! -s out
'

test_done
