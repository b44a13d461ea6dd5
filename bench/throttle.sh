# SPDX-License-Identifier: GPL-2.0-or-later
#
# Flash on a device slower than the CPU (group "throttle" of BENCH_ONLY).
#
# The bench's loop devices sit on files of a VM disk that the host caches:
# fio writes them at 1-4 GB/s, faster than imager can decompress and check
# chunks on two CPUs, so the plain "flash vs O_DIRECT write" ratio measures
# the CPU, not how well imager keeps a disk busy. Here the target is
# throttled by the kernel's block-I/O cgroup controller to the figures of
# the disks imager is for (BENCH_THROTTLE_WRITE_MBPS=400 MB/s write,
# BENCH_THROTTLE_READ_MBPS=700 MB/s read, 1 MB = 10^6 bytes), and fio and
# imager flash are measured under the same limits, in the same rounds:
# - throttle-device-write: fio, 4 MiB O_DIRECT writes, the used bytes' size;
# - throttle-flash-no-verify / throttle-flash-verify: imager flash.
# The limit applies to direct I/O and to I/O a process submits itself; in
# cgroup v1 it does not apply to the kernel's writeback of buffered writes,
# so partclone (buffered writes, then sync) cannot be throttled fairly and
# is left out.
#
# Sourced by bench/run.sh; uses its measure, owned, say, die, LOG, TSV, WORK,
# TGT, TARGET, STORE, RUNS and USED_BYTES.

THROTTLE_WRITE_MBPS=${BENCH_THROTTLE_WRITE_MBPS:-400}
THROTTLE_READ_MBPS=${BENCH_THROTTLE_READ_MBPS:-700}
THROTTLE_CG=
THROTTLE_HOME=

# throttle_setup DEV: a cgroup limiting DEV; the shell joins it with throttle_on
throttle_setup() {
	local mm w=$((THROTTLE_WRITE_MBPS * 1000000)) r=$((THROTTLE_READ_MBPS * 1000000))
	mm=$(lsblk -dno MAJ:MIN "$1" | tr -d ' ')
	if [ -d /sys/fs/cgroup/blkio ]; then
		THROTTLE_CG=/sys/fs/cgroup/blkio/imager-bench-$$
		THROTTLE_HOME=/sys/fs/cgroup/blkio$(sed -n 's/^[0-9]*:blkio:\(.*\)$/\1/p' /proc/self/cgroup)
		mkdir "$THROTTLE_CG"
		echo "$mm $w" >"$THROTTLE_CG/blkio.throttle.write_bps_device"
		echo "$mm $r" >"$THROTTLE_CG/blkio.throttle.read_bps_device"
	elif grep -qw io /sys/fs/cgroup/cgroup.controllers 2>/dev/null; then
		THROTTLE_CG=/sys/fs/cgroup/imager-bench-$$
		THROTTLE_HOME=/sys/fs/cgroup$(sed -n 's/^0::\(.*\)$/\1/p' /proc/self/cgroup)
		echo +io >/sys/fs/cgroup/cgroup.subtree_control
		mkdir "$THROTTLE_CG"
		echo "$mm wbps=$w rbps=$r" >"$THROTTLE_CG/io.max"
	else
		die "throttle: no block-I/O cgroup controller (blkio or io) on this kernel"
	fi
}

throttle_on() { echo "$BASHPID" >"$THROTTLE_CG/cgroup.procs"; }
throttle_off() { echo "$BASHPID" >"$THROTTLE_HOME/cgroup.procs"; }
throttle_cleanup() {
	[ -n "$THROTTLE_CG" ] || return 0
	throttle_off 2>/dev/null || true
	rmdir "$THROTTLE_CG" 2>/dev/null || true
	THROTTLE_CG=
}

throttle_runs() {
	local r bytes
	[ -n "${USED_BYTES:-}" ] || die "throttle: no capture to flash (BENCH_ONLY needs capture or flash)"
	throttle_setup "$TGT"
	say "throttle: $TGT limited to $THROTTLE_WRITE_MBPS MB/s write, $THROTTLE_READ_MBPS MB/s read"
	# whole 4 MiB requests covering the used bytes: the data a flash writes
	bytes=$(((USED_BYTES + 4194303) / 4194304 * 4194304))
	for r in $(seq 1 "$RUNS"); do
		owned "$TGT" "$TARGET"
		throttle_on
		dev_rate throttle-device-write "$r" write "$TGT" "$bytes"
		throttle_off
		for v in no-verify verify; do
			throttle_on
			run_imager_flash "$r" "$v" throttle-
			throttle_off
		done
	done
	throttle_cleanup
}

throttle_report() {
	local dw fr x ideal
	have throttle-device-write || return 0
	echo
	echo "flash on a throttled target ($THROTTLE_WRITE_MBPS MB/s write, $THROTTLE_READ_MBPS MB/s read; bench/throttle.sh):"
	dw=$(calc %.1f "$(med throttle-device-write 6) / $(med throttle-device-write 3) / 1e6")
	printf '  %-26s %9s %14s %10s\n' test wall_s bytes MB/s
	printf '  %-26s %9.2f %14s %10s\n' throttle-device-write "$(med throttle-device-write 3)" \
		"$(med throttle-device-write 6)" "$dw"
	for v in no-verify verify; do
		have "throttle-flash-$v" || continue
		fr=$(calc %.1f "$(med throttle-flash-$v 6) / $(med throttle-flash-$v 3) / 1e6")
		printf '  %-26s %9.2f %14s %10s\n' "throttle-flash-$v" "$(med throttle-flash-$v 3)" \
			"$(med throttle-flash-$v 6)" "$fr"
	done
	if have throttle-flash-no-verify; then
		fr=$(calc %.1f "$(med throttle-flash-no-verify 6) / $(med throttle-flash-no-verify 3) / 1e6")
		x=$(calc %.0f "100 * $fr / $dw")
		printf '  flash no-verify write rate vs O_DIRECT write: %s / %s MB/s = %s%% (target >= 90%%) %s\n' \
			"$fr" "$dw" "$x" "$(verdict "$x >= 90")"
	fi
	if have throttle-flash-no-verify:write; then
		# what the target sees once writing starts, and the pass before it
		fr=$(calc %.1f "$(med throttle-flash-no-verify:write 6) / $(med throttle-flash-no-verify:write 3) / 1e6")
		x=$(calc %.0f "100 * $fr / $dw")
		printf '  the same, write phase only: %s MB/s = %s%% of the device; before it, %s s authenticating the chunks\n' \
			"$fr" "$x" "$(med throttle-flash-no-verify:authenticate 3)"
	fi
	if have throttle-flash-verify; then
		# the least a verified flash can take: write every byte, then read it back
		ideal=$(calc %.2f "$(med throttle-flash-verify 6) / ($dw * 1e6) + $(med throttle-flash-verify 6) / ($THROTTLE_READ_MBPS * 1e6)")
		x=$(calc %.0f "100 * $ideal / $(med throttle-flash-verify 3)")
		printf '  flash verify: %s s for a write + read-back that takes at least %s s at these rates = %s%% (target >= 90%%) %s\n' \
			"$(med throttle-flash-verify 3)" "$ideal" "$x" "$(verdict "$x >= 90")"
	fi
}
