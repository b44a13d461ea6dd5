#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
test_description='imager disks: bad input gives one clear line and a documented exit code'
. "$(dirname "$0")/../lib/test-lib.sh"
. "$TESTS_DIR/lib/disks.sh"

# expect_error CODE PATTERN ARGS...: exit status CODE, nothing on stdout, and
# exactly one line on stderr matching PATTERN
expect_error() {
	local code=$1 pattern=$2 rc=0
	shift 2
	"$@" >stdout 2>stderr || rc=$?
	expect_eq "$rc" "$code" "exit status of '$*'" &&
	{ [ ! -s stdout ] || { echo "unexpected stdout:" >&2; cat stdout >&2; return 1; }; } &&
	expect_eq "$(wc -l <stderr)" 1 "number of stderr lines" &&
	{ grep -qE "$pattern" stderr || { echo "stderr does not match '$pattern':" >&2; cat stderr >&2; return 1; }; }
}

test_expect_success 'a missing path: exit 5 (not found)' '
	expect_error 5 "^imager: .*nothing-here.* does not exist" "$IMAGER" disks "$TRASH/nothing-here"
'

test_expect_success 'a text file: exit 7 (not a disk)' '
	cp /etc/passwd passwd &&
	expect_error 7 "is not a disk image" "$IMAGER" disks passwd
'

test_expect_success 'a text file of whole sectors: exit 7 (not a disk)' '
	for i in $(seq 256); do echo "not a disk image"; done >text4k && truncate -s 4096 text4k &&
	expect_error 7 "is not a disk image" "$IMAGER" disks text4k
'

test_expect_success 'an empty file: exit 7 (not a disk)' '
	: >empty &&
	expect_error 7 "is not a disk image" "$IMAGER" disks empty
'

test_expect_success 'a character device: exit 7 (not a disk)' '
	expect_error 7 "/dev/null.*character device" "$IMAGER" disks /dev/null
'

test_expect_success 'a directory: exit 7 (not a disk)' '
	mkdir dir &&
	expect_error 7 "is a directory" "$IMAGER" disks dir
'

test_expect_success ROOT 'an image file nobody may read, as nobody: exit 6 (access)' '
	make_blank_disk locked.img 8M &&
	chmod 000 locked.img &&
	chmod 755 "$TRASH" &&
	expect_error 6 "Permission denied" setpriv --reuid=nobody --regid=nogroup --clear-groups \
		"$IMAGER" disks "$TRASH/locked.img"
'

test_expect_success 'usage errors: exit 2' '
	rc=0 && "$IMAGER" disks --no-such-option >/dev/null 2>stderr || rc=$? &&
	expect_eq $rc 2 && grep -q "unknown option" stderr &&
	rc=0 && "$IMAGER" disks a b >/dev/null 2>stderr || rc=$? &&
	expect_eq $rc 2 && grep -q "at most one DEVICE" stderr
'

test_expect_success '--help: exit 0, documents the exit codes' '
	"$IMAGER" disks --help >help &&
	grep -q "5 no such DEVICE" help
'

test_done
