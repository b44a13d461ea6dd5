# SPDX-License-Identifier: GPL-2.0-or-later
#
# The runtime tests' library (tests/vm/t95*-appliance-*.sh): the appliance
# booted the way people use it (its USB image through GRUB), driven from its
# kernel command line or its serial console, and read back without mounting.
# Source after test-lib.sh, disks.sh and qemu.sh.
#
#	appliance_build                  the USB image (qemu_defconfig), built once
#	                                 per tree state and shared by the scripts:
#	                                 sets APPLIANCE_DIR (imager-usb.img, vmlinuz,
#	                                 initramfs.img)
#	appliance_copy OUT [ARGS...]     a private sparse copy of the image; with
#	                                 ARGS, GRUB boots entry --default ACTION with
#	                                 those kernel arguments (boot/set-local-cfg.sh)
#	appliance_boot IMG [--input] [--firmware F] [-- DISK-SPECS...]
#	                                 boots IMG from USB with the disks
#	                                 "BUS:FILE:SERIAL[:snapshot]" attached
#	data_offset IMG, data_end IMG    where IMG's IMAGER-DATA partition starts, ends
#	data_ls IMG DIR                  file names in DIR of the data partition
#	data_cat IMG PATH                a file of the data partition on stdout
#	data_rdump IMG DIR OUT           copy DIR of the data partition into OUT
#	data_put IMG DIR DEST            copy the tree DIR into DEST on the data partition
#	appliance_resume                 in a later test body: the QEMU of appliance_boot
#	console_expect MARKER [TIMEOUT]  waits for MARKER after the last match
#	console_answer PROMPT TEXT       console_expect PROMPT, then types TEXT
#	console_choose PROMPT REGEX      console_expect PROMPT, then types the
#	                                 number of the menu line matching REGEX
#	json_get FILE JQ_FILTER          jq -r on a report
#	disk_sha FILE                    sha256 of a disk image
#
# Every write goes to files under $TRASH: the shared build output is copied
# before a boot (sparse), and inputs are attached with snapshot=on.

: "${TRASH:?appliance.sh: source tests/lib/test-lib.sh first}"
. "$TESTS_DIR/lib/appliance-build.sh"

APPLIANCE_TOP=$(cd "$TESTS_DIR/.." && pwd)
APPLIANCE_DIR=$O/tests/appliance-run
# boot to IMAGER-READY: 15-35 s under TCG on an idle machine, 100 s seen on a
# busy one (load 10 on 2 cores)
APPLIANCE_BOOT_TIMEOUT=${APPLIANCE_BOOT_TIMEOUT:-300}

# _appliance_inputs_hash: what the build depends on (the runtime, the build
# scripts, the kconfig, imager): a change rebuilds
_appliance_inputs_hash() {
	(
		cd "$APPLIANCE_TOP" &&
			find initramfs boot kconfig configs mk -type f -print0 | LC_ALL=C sort -z |
			xargs -0 sha256sum &&
			sha256sum <"$IMAGER"
	) | sha256sum | cut -c1-64
}

# appliance_build: builds $O/tests/appliance-run/ unless it matches the tree
appliance_build() {
	local dir=$APPLIANCE_DIR want
	mkdir -p "$dir"
	want=$(_appliance_inputs_hash) || return 1
	(
		flock 9
		if [ -s "$dir/imager-usb.img" ] && [ "$(cat "$dir/.inputs" 2>/dev/null)" = "$want" ]; then
			exit 0
		fi
		rm -f "$dir/.inputs"
		abuild_image "$dir" qemu_defconfig >"$dir/build.log" 2>&1 ||
			{ tail -n 30 "$dir/build.log" >&2; exit 1; }
		echo "$want" >"$dir/.inputs"
	) 9>"$O/tests/.appliance-run.lock"
}

# appliance_copy OUT [--default ACTION] [ARGS...]: a sparse copy of the
# built image; ARGS go onto GRUB's kernel command line (timeout 0)
appliance_copy() {
	local out=$1
	shift
	assert_safe_target "$out"
	cp --sparse=always "$APPLIANCE_DIR/imager-usb.img" "$out" || return 1
	[ $# -eq 0 ] || bash "$APPLIANCE_TOP/boot/set-local-cfg.sh" "$out" --timeout 0 "$@" >/dev/null
}

# appliance_boot IMG [--input] [--firmware F] [--log LOG] [-- BUS:FILE:SERIAL[:snapshot]...]
# Boots the appliance image IMG from USB (usb-storage on qemu-xhci, the way
# a stick is plugged in) with the other disks; QEMU runs in the background
# (qemu_wait_for, console_expect, qemu_wait_exit).
appliance_boot() {
	local img=$1 input= firmware=bios log=$TRASH/console.log spec bus file serial opt
	shift
	while [ $# -gt 0 ]; do
		case $1 in
		--input) input=--serial-input; shift ;;
		--firmware) firmware=$2; shift 2 ;;
		--log) log=$2; shift 2 ;;
		--) shift; break ;;
		*) echo "appliance_boot: unknown option '$1'" >&2; return 1 ;;
		esac
	done
	qemu_disks_reset
	qemu_add_disk usb "$img" imager-stick --bootindex 0 || return 1
	for spec in "$@"; do
		IFS=: read -r bus file serial opt <<<"$spec"
		# shellcheck disable=SC2086 # opt is empty or --snapshot
		qemu_add_disk "$bus" "$file" "$serial" ${opt:+--$opt} || return 1
	done
	CONSOLE_POS=0
	qemu_start --firmware "$firmware" --log "$log" $input || return 1
	_appliance_save
}

# Each test body is a subshell: the running QEMU's variables and the console
# position go through a file, and appliance_resume (first in a body that
# talks to a QEMU started by an earlier one) reads them back.
_appliance_save() {
	# -g: appliance_resume sources this inside a function
	declare -p QEMU_PID QEMU_LOG QEMU_START_NS QEMU_SERIAL_IN CONSOLE_POS 2>/dev/null |
		sed 's/^declare -[-a-z]* /declare -g /' >"$TRASH/.appliance-state"
}
appliance_resume() {
	[ -r "$TRASH/.appliance-state" ] || { echo "appliance_resume: no QEMU was started" >&2; return 1; }
	# declare -p output, written by _appliance_save above
	. "$TRASH/.appliance-state"
}

# data_offset IMG: byte offset of the IMAGER-DATA partition; data_end IMG:
# the byte after it
data_offset() { abuild_part_offset "$1" IMAGER-DATA; }
data_end() {
	sfdisk --json "$1" | jq -e -r '.partitiontable as $t | $t.partitions[] |
		select(.name == "IMAGER-DATA") | (.start + .size) * ($t.sectorsize // 512)'
}

# data_ls IMG DIR: the names in DIR on the data partition, one per line, sorted
data_ls() {
	debugfs -R "ls -p $2" "$1?offset=$(data_offset "$1")" 2>/dev/null |
		awk -F/ 'NF >= 6 && $6 != "." && $6 != ".." { print $6 }' | LC_ALL=C sort
}

# data_cat IMG PATH: a file of the data partition
data_cat() { debugfs -R "cat $2" "$1?offset=$(data_offset "$1")" 2>/dev/null; }

# data_rdump IMG DIR OUT: DIR of the data partition copied into OUT/
data_rdump() {
	mkdir -p "$3" && debugfs -R "rdump $2 $3" "$1?offset=$(data_offset "$1")" >/dev/null 2>&1 &&
		[ -d "$3/$(basename "$2")" ]
}

# console_expect MARKER [TIMEOUT]: 0 once MARKER (a fixed string) appears in
# the console log after the end of the previous match; advances past it
console_expect() {
	local marker=$1 timeout=${2:-${QEMU_TIMEOUT:-180}} deadline hit
	deadline=$(($(date +%s) + timeout))
	while :; do
		hit=$(tail -c +$((CONSOLE_POS + 1)) "$QEMU_LOG" | grep -abo -F -- "$marker" | head -n 1)
		if [ -n "$hit" ]; then
			CONSOLE_POS=$((CONSOLE_POS + ${hit%%:*} + ${#marker}))
			_appliance_save
			return 0
		fi
		if ! _qemu_alive; then
			echo "console: QEMU exited before '$marker'" >&2
			return 1
		fi
		if [ "$(date +%s)" -ge "$deadline" ]; then
			echo "console: no '$marker' within $timeout s" >&2
			return 1
		fi
		sleep 0.2
	done
}

# console_answer PROMPT TEXT [TIMEOUT]: waits for PROMPT, then types TEXT and Enter
console_answer() {
	console_expect "$1" "${3:-}" && qemu_send "$2"
}

# json_get FILE FILTER: jq -r FILTER FILE
json_get() { jq -r "$2" "$1"; }

# disk_sha FILE
disk_sha() { sha256sum <"$1" | cut -c1-64; }

# data_put IMG DIR DEST: copies the tree DIR into DEST (e.g. /store) on the
# data partition with debugfs -w (no mount); existing files are replaced
data_put() {
	local img=$1 src=$2 dest=$3 cmds p
	cmds=$(mktemp "$TRASH/.data_put.XXXXXX") || return 1
	(
		cd "$src" || exit 1
		echo "mkdir $dest"
		find . -mindepth 1 -type d | LC_ALL=C sort | while IFS= read -r p; do
			echo "mkdir $dest/${p#./}"
		done
		find . -type f | LC_ALL=C sort | while IFS= read -r p; do
			echo "rm $dest/${p#./}"
			echo "write $src/${p#./} $dest/${p#./}"
		done
	) >"$cmds" || return 1
	debugfs -w -f "$cmds" "$img?offset=$(data_offset "$img")" >/dev/null 2>&1
	rm -f "$cmds"
	# every file must now be there, with its content
	(cd "$src" && find . -type f) | while IFS= read -r p; do
		[ "$(data_cat "$img" "$dest/${p#./}" | sha256sum)" = "$(sha256sum <"$src/$p")" ] ||
			{ echo "data_put: $dest/${p#./} was not written" >&2; exit 1; }
	done
}

# console_choose PROMPT PATTERN: waits for PROMPT, finds the menu line
# "  N) ..." matching the extended regex PATTERN that the console printed
# since the previous match, and types N. Fails if none or several match.
console_choose() {
	local from=$CONSOLE_POS n
	console_expect "$1" || return 1
	n=$(tail -c +$((from + 1)) "$QEMU_LOG" | head -c $((CONSOLE_POS - from)) | tr -d '\r' |
		grep -aE "^ +[0-9]+\) .*$2" | sed -E 's/^ +([0-9]+)\).*/\1/')
	[ "$(echo "$n" | grep -c .)" -eq 1 ] ||
		{ echo "console: '$2' matches menu lines '$n'" >&2; return 1; }
	qemu_send "$n"
}
