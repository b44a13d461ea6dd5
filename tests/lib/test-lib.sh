# SPDX-License-Identifier: GPL-2.0-or-later
#
# TAP shell-test library (after git's t/test-lib.sh). A test script:
#
#	#!/bin/bash
#	test_description='what this script checks'
#	. "$(dirname "$0")/../lib/test-lib.sh"
#	test_expect_success 'name' 'commands...'
#	test_expect_success LOOP 'needs a loop device' '...'
#	test_done
#
# Each test body runs in a subshell with `set -e -o pipefail` inside the
# script's own scratch directory $TRASH (cwd). State shared between tests goes
# through files in $TRASH.
#
# Safety: every disk a test writes is a file under $TRASH or a loop device
# attached by loop_attach over such a file; `imager_w` (the wrapper for
# writing verbs) and `assert_safe_target` refuse anything else. Loop devices,
# mounts and QEMU processes are registered and released on exit, failure and
# interrupt (kill by PID only).
#
# Prerequisites: ROOT, LOOP, QEMU, OVMF, GRUB_PC, GRUB_EFI. A missing one
# skips with its reason; under CI=true tests/run counts loop/vm skips as failed.

set -u
: "${O:?O (the build output directory) must be set; run through tests/run}"
: "${IMAGER:=$O/imager}"
TESTS_DIR=${TESTS_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
export TESTS_DIR IMAGER
# stores made by tests are encrypted (the default) with this passphrase; the fast KDF is for tests only
export IMAGER_PASSPHRASE=imager-test-passphrase IMAGER_KDF_FAST=1
TEST_NAME=$(basename "$0" .sh)
TRASH=$O/tests/trash/$TEST_NAME
# never let a stale scratch dir leak state into this run
rm -rf "$TRASH"
mkdir -p "$TRASH"
TRASH=$(cd "$TRASH" && pwd -P)
export TRASH
cd "$TRASH"
test_count=0 test_failed=0
: >"$TRASH/.loops"
: >"$TRASH/.mounts"
: >"$TRASH/.pids"

say() { printf '# %s\n' "$*"; }

# --- cleanup -----------------------------------------------------------------

test_cleanup() {
	local pid m dev
	[ -f "$TRASH/.pids" ] || return 0
	while read -r pid; do
		[ -n "$pid" ] || continue
		kill "$pid" 2>/dev/null && { sleep 0.2; kill -9 "$pid" 2>/dev/null; }
	done <"$TRASH/.pids"
	tac "$TRASH/.mounts" | while read -r m; do
		[ -n "$m" ] && umount "$m" 2>/dev/null
	done
	tac "$TRASH/.loops" | while read -r dev; do
		[ -n "$dev" ] || continue
		partx -d "$dev" 2>/dev/null
		losetup -d "$dev" 2>/dev/null
	done
	: >"$TRASH/.pids"; : >"$TRASH/.mounts"; : >"$TRASH/.loops"
}
trap 'test_cleanup' EXIT
trap 'test_cleanup; exit 130' INT TERM

# --- prerequisites -------------------------------------------------------------

test_have_prereq() {
	local p
	for p in ${1//,/ }; do
		case $p in
		ROOT) [ "$(id -u)" -eq 0 ] || return 1 ;;
		LOOP) [ "$(id -u)" -eq 0 ] && [ -w /dev/loop-control ] && command -v losetup >/dev/null || return 1 ;;
		QEMU) command -v qemu-system-x86_64 >/dev/null || return 1 ;;
		OVMF) [ -r /usr/share/OVMF/OVMF_CODE_4M.fd ] || return 1 ;;
		GRUB_PC) [ -r /usr/lib/grub/i386-pc/boot.img ] || return 1 ;;
		GRUB_EFI) [ -d /usr/lib/grub/x86_64-efi ] || return 1 ;;
		*) echo "# unknown prerequisite '$p'" >&2; return 1 ;;
		esac
	done
}

# --- tests -------------------------------------------------------------------

# test_expect_success [PREREQ] DESCRIPTION BODY
test_expect_success() {
	local prereq= desc body
	[ $# -eq 3 ] && { prereq=$1; shift; }
	desc=$1 body=$2
	test_count=$((test_count + 1))
	if [ -n "$prereq" ] && ! test_have_prereq "$prereq"; then
		echo "ok $test_count # skip $desc (missing prerequisite $prereq)"
		return 0
	fi
	if (set -e -o pipefail; eval "$body") >"$TRASH/.out" 2>&1; then
		echo "ok $test_count - $desc"
		[ -z "${TEST_VERBOSE:-}" ] || sed 's/^/#   /' "$TRASH/.out"
	else
		echo "not ok $test_count - $desc"
		sed 's/^/#   /' "$TRASH/.out" | tail -n 60
		test_failed=$((test_failed + 1))
	fi
}

# Whole-script skip (exit 77), e.g. when a tier's tool is missing.
skip_all() {
	echo "1..0 # SKIP $*"
	exit 77
}

test_done() {
	echo "1..$test_count"
	test_cleanup
	[ "$test_failed" -eq 0 ] || exit 1
	[ -n "${TEST_KEEP_TRASH:-}" ] || rm -rf "$TRASH"
	exit 0
}

# --- assertions ----------------------------------------------------------------

# test_cmp EXPECTED ACTUAL: diff -u, shown on failure.
test_cmp() { diff -u "$1" "$2"; }

# expect_eq ACTUAL EXPECTED [WHAT]
expect_eq() {
	[ "$1" = "$2" ] || { echo "expected ${3:-value} '$2', got '$1'" >&2; return 1; }
}

# expect_exit CODE CMD...: runs CMD, requires exit status CODE.
expect_exit() {
	local want=$1 rc=0
	shift
	"$@" || rc=$?
	[ "$rc" -eq "$want" ] || { echo "expected exit $want from '$*', got $rc" >&2; return 1; }
}

# --- disks: files and loop devices ---------------------------------------------

# True if $1 is a file under $TRASH or a loop device this script attached.
is_own_target() {
	local t
	t=$(realpath -m "$1")
	case $t in "$TRASH"/*) [ ! -b "$t" ] && return 0 ;; esac
	grep -qxF "$t" "$TRASH/.loops"
}

assert_safe_target() {
	is_own_target "$1" || { echo "test-lib: refusing to touch '$1': not created by this test" >&2; exit 99; }
}

# loop_attach FILE [SECTOR_SIZE] -> prints /dev/loopN. FILE must be under $TRASH.
loop_attach() {
	local file dev ss=${2:-512}
	file=$(realpath "$1")
	case $file in "$TRASH"/*) ;; *) echo "test-lib: loop_attach: '$1' is not under $TRASH" >&2; return 1 ;; esac
	dev=$(losetup --show -f --direct-io=off --sector-size "$ss" "$file") || return 1
	echo "$dev" >>"$TRASH/.loops"
	# the previous user of this loop number may have left partitions behind
	partx -d "$dev" 2>/dev/null || true
	echo "$dev"
}

loop_detach() {
	partx -d "$1" 2>/dev/null || true
	losetup -d "$1"
	grep -vxF "$1" "$TRASH/.loops" >"$TRASH/.loops.new" || true
	mv "$TRASH/.loops.new" "$TRASH/.loops"
}

# loop_partitions DEV: create partition nodes (partx -a), for mkfs/mount only.
loop_partitions() {
	partx -d "$1" 2>/dev/null || true
	partx -a "$1"
	udevadm settle 2>/dev/null || true
	local i
	for i in $(seq 1 50); do
		[ -b "${1}p1" ] && return 0
		sleep 0.1
	done
	echo "test-lib: no partition nodes for $1" >&2
	return 1
}

register_mount() { echo "$1" >>"$TRASH/.mounts"; }
register_pid() { echo "$1" >>"$TRASH/.pids"; }

# imager_w VERB ARGS... TARGET: runs a writing verb after checking that every
# argument naming a /dev node or a path outside $TRASH is not a disk target.
imager_w() {
	local a
	for a in "$@"; do
		case $a in /dev/*) assert_safe_target "$a" ;; esac
	done
	"$IMAGER" "$@"
}

# imager_guard FILE: writes FILE, an executable that runs $IMAGER but refuses
# (exit 99) a flash onto any /dev node this script did not attach: what scripts
# that run imager for us (the appliance's jobs.sh) get as IMAGER=.
imager_guard() {
	cat >"$1" <<-EOF &&
	#!/bin/bash
	# refuse a flash onto anything but this test's loop devices
	if [ "\$1" = flash ]; then
		for a in "\$@"; do
			case \$a in /dev/*) grep -qxF "\$a" "$TRASH/.loops" ||
				{ echo "imager-guard: refusing \$a" >&2; exit 99; } ;; esac
		done
	fi
	exec "$IMAGER" "\$@"
	EOF
	chmod +x "$1"
}

# Replace /dev/loopN by /dev/loopX, and the scratch dir by TRASH.
normalize() { sed -e 's#/dev/loop[0-9][0-9]*#/dev/loopX#g' -e "s#$TRASH#TRASH#g"; }

echo "# $TEST_NAME: ${test_description:-}"
