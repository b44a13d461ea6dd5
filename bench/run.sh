#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Benchmarks `imager capture` and `imager flash` against their peers on a
# realistic disk: partclone|zstd (what Clonezilla does), dd|zstd, bmaptool;
# and against the device's own O_DIRECT bandwidth. Run through `make bench`
# (sets O and IMAGER). Needs root. See bench/README.md.
#
# Knobs (environment):
#   BENCH_DISK_GIB=8     size of the source and target disks
#   BENCH_RUNS=3         runs per measurement; the median is reported
#   BENCH_FILES_MIB      real files copied from /usr (default min(2560, 320 * GiB))
#   BENCH_RANDOM_MIB     incompressible data (default min(1024, 128 * GiB))
#   BENCH_GARBAGE_MIB    urandom file written then deleted first (default 512 * GiB)
#   BENCH_CACHE=$O/bench-cache   where the source disk is built once and reused
#   BENCH_WORK=$O/bench-work     stores, peer images and the target disk
#   BENCH_ONLY="capture flash device crypt throttle"   a subset of the groups
#                        (crypt: encryption on vs off, bench/crypt.sh; throttle:
#                        flash on a target limited to a disk's bandwidth,
#                        bench/throttle.sh)
#
# Everything written goes to files under BENCH_CACHE / BENCH_WORK or to the
# loop devices this script attached over them (checked before each write).

set -euo pipefail
export LC_ALL=C

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
: "${O:=$BENCH_DIR/../output}"
: "${IMAGER:=$O/imager}"
GIB=${BENCH_DISK_GIB:-8}
RUNS=${BENCH_RUNS:-3}
min() { echo $(($1 < $2 ? $1 : $2)); }
FILES_MIB=${BENCH_FILES_MIB:-$(min 2560 $((320 * GIB)))}
RANDOM_MIB=${BENCH_RANDOM_MIB:-$(min 1024 $((128 * GIB)))}
GARBAGE_MIB=${BENCH_GARBAGE_MIB:-$((512 * GIB))}
CACHE=${BENCH_CACHE:-$O/bench-cache}
WORK=${BENCH_WORK:-$O/bench-work}
ONLY=${BENCH_ONLY:-capture flash device crypt throttle}
OUT=$BENCH_DIR/out
ESP_MIB=256 # a common ESP size (systemd-boot, Fedora, Ubuntu use 256 MiB-1 GiB)

die() { echo "bench: $*" >&2; exit 1; }
say() { printf 'bench: %s\n' "$*" >&2; }

[ "$(id -u)" -eq 0 ] || die "needs root (loop devices, mount, drop_caches)"
[ -x "$IMAGER" ] || die "no imager at '$IMAGER' (run 'make bench')"
for t in losetup partx sfdisk sgdisk mkfs.ext4 mkfs.fat mcopy e2fsck partclone.ext4 \
	partclone.vfat zstd bmaptool /usr/bin/time; do
	command -v "$t" >/dev/null || die "'$t' is missing (make deps)"
done
case $GIB in '' | *[!0-9]*) die "BENCH_DISK_GIB must be a number of GiB" ;; esac
[ "$GIB" -ge 2 ] || die "BENCH_DISK_GIB must be at least 2"
case $RUNS in '' | *[!0-9]* | 0) die "BENCH_RUNS must be a positive number" ;; esac

mkdir -p "$CACHE" "$WORK" "$OUT"
CACHE=$(cd "$CACHE" && pwd -P)
WORK=$(cd "$WORK" && pwd -P)
IMAGER=$(realpath "$IMAGER")

# --- resources: loop devices and mounts we own, released on any exit --------

LOOPS=() MOUNTS=()
cleanup() {
	local i
	! declare -F throttle_cleanup >/dev/null || throttle_cleanup
	for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do
		umount "${MOUNTS[i]}" 2>/dev/null || umount -l "${MOUNTS[i]}" 2>/dev/null || true
	done
	MOUNTS=()
	for i in "${LOOPS[@]}"; do
		partx -d "$i" 2>/dev/null || true
		losetup -d "$i" 2>/dev/null || true
	done
	LOOPS=()
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# attach VAR FILE [losetup options]: attach FILE, store the node in VAR.
attach() {
	# names with a leading _ so that they cannot shadow the caller's VAR
	local _var=$1 _file=$2 _dev
	shift 2
	_dev=$(losetup --find --show "$@" "$_file") || die "cannot attach '$_file'"
	LOOPS+=("$_dev")
	# the previous user of this loop number may have left partitions behind
	partx -d "$_dev" 2>/dev/null || true
	printf -v "$_var" '%s' "$_dev"
}

detach() {
	local dev=$1 l keep=()
	partx -d "$dev" 2>/dev/null || true
	losetup -d "$dev"
	for l in "${LOOPS[@]}"; do [ "$l" = "$dev" ] || keep+=("$l"); done
	LOOPS=("${keep[@]}")
}

# partitions DEV: (re)create the partition nodes of DEV
partitions() {
	local i
	partx -d "$1" 2>/dev/null || true
	partx -a "$1"
	udevadm settle 2>/dev/null || true
	for i in $(seq 1 50); do
		[ -b "${1}p3" ] && return 0
		sleep 0.1
	done
	die "no partition nodes for $1"
}

# owned DEV FILE: refuse unless DEV is a loop device we attached over FILE
owned() {
	local back l ok=
	for l in "${LOOPS[@]}"; do [ "$l" = "$1" ] && ok=1; done
	[ -n "$ok" ] || die "refusing to write '$1': not a loop device of this run"
	back=$(losetup -n -O BACK-FILE "$1" | sed 's/[[:space:]]*$//')
	[ "$back" = "$2" ] || die "refusing to write '$1': backed by '$back', not '$2'"
}

domount() {
	mount "$@"
	MOUNTS+=("${!#}")
}

doumount() {
	umount "$1"
	local m keep=()
	for m in "${MOUNTS[@]}"; do [ "$m" = "$1" ] || keep+=("$m"); done
	MOUNTS=("${keep[@]}")
}

drop_caches() {
	sync
	echo 3 >/proc/sys/vm/drop_caches
}

# --- the source disk, built once ----------------------------------------------

DISK=$CACHE/disk-${GIB}g.img
READY=$DISK.ready
PARAMS="gib=$GIB files=$FILES_MIB random=$RANDOM_MIB garbage=$GARBAGE_MIB esp=$ESP_MIB v=1"

build_disk() {
	local dev mnt=$CACHE/mnt esp=$CACHE/esp.img list=$CACHE/files.list used
	say "building the source disk $DISK ($PARAMS); done once, then reused"
	rm -f "$DISK" "$READY" "$DISK.bmap" "$esp"
	truncate -s "${GIB}G" "$DISK"
	# BIOS-boot (raw), ESP (FAT32), root (ext4) filling the rest: so root is p3
	sfdisk -q "$DISK" <<-EOF
		label: gpt
		start=1MiB, size=1MiB, type=21686148-6449-6E6F-744E-656564454649, name=bios
		size=${ESP_MIB}MiB, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name=esp
		type=4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709, name=root
	EOF

	# ESP: FAT32 built in a file (vfat cannot be mounted here), then dd'd in place
	mkfs.fat -F 32 -n ESP -C "$esp" $((ESP_MIB * 1024)) >/dev/null
	mmd -i "$esp" ::/EFI ::/EFI/BOOT ::/EFI/debian ::/grub
	local src
	for src in /usr/lib/grub/x86_64-efi /usr/lib/grub/i386-pc; do
		[ -d "$src" ] && mcopy -s -i "$esp" "$src" ::/grub/
	done
	# a kernel and an initramfs are compressed: random bytes stand in for them
	head -c 10M /dev/urandom >"$CACHE/vmlinuz"
	head -c 40M /dev/urandom >"$CACHE/initrd.img"
	mcopy -i "$esp" "$CACHE/vmlinuz" "$CACHE/initrd.img" ::/EFI/debian/
	rm -f "$CACHE/vmlinuz" "$CACHE/initrd.img"

	attach dev "$DISK" --direct-io=off
	partitions "$dev"
	head -c 64K /dev/urandom | dd of="${dev}p1" bs=64K conv=fsync status=none
	dd if="$esp" of="${dev}p2" bs=4M conv=fsync status=none
	rm -f "$esp"

	mkfs.ext4 -q -F -L root -E lazy_itable_init=0,lazy_journal_init=0 "${dev}p3"
	mkdir -p "$mnt"
	domount "${dev}p3" "$mnt"
	# garbage first, then deleted: free blocks hold non-zero bytes afterwards
	say "writing ${GARBAGE_MIB} MiB of garbage, then deleting it"
	dd if=/dev/urandom of="$mnt/garbage" bs=4M count=$((GARBAGE_MIB / 4)) status=none
	sync
	rm "$mnt/garbage"
	sync
	# real files: regular files from /usr, in a fixed order, up to the budget
	say "copying ${FILES_MIB} MiB of files from /usr"
	{ find /usr/share /usr/lib /usr/bin /usr/sbin /usr/include /usr/libexec -xdev -type f \
		! -name $'*\n*' -printf '%s %p\n' 2>/dev/null || true; } |
		awk -v max=$((FILES_MIB * 1024 * 1024)) \
			'done { next } { s = $1; sub(/^[0-9]+ /, "") }
			 t + s > max { done = 1; next } { t += s; print }' \
			>"$list"
	# files that vanish or change while read are fine: the budget is approximate
	{ tar -cf - --verbatim-files-from -T "$list" 2>/dev/null || true; } | tar -xf - -C "$mnt"
	rm -f "$list"
	say "writing ${RANDOM_MIB} MiB of incompressible data"
	mkdir "$mnt/data"
	local i n=4
	for i in $(seq 1 $n); do
		dd if=/dev/urandom of="$mnt/data/random$i" bs=1M count=$((RANDOM_MIB / n)) \
			status=none
	done
	(cd "$mnt/data" && sha256sum random*) >"$CACHE/random.sha256"
	used=$(df -B1 --output=used "$mnt" | tail -1)
	sync
	doumount "$mnt"
	e2fsck -fn "${dev}p3" >/dev/null || die "the fresh ext4 is not clean"
	detach "$dev"

	say "bmaptool create (for the bmaptool peer)"
	bmaptool -q create -o "$DISK.bmap" "$DISK"
	echo "$PARAMS ext4_used=$used" >"$READY"
}

if [ ! -f "$READY" ] || [ "$(cut -d' ' -f1-6 "$READY")" != "$PARAMS" ] || [ ! -f "$DISK.bmap" ]; then
	build_disk
else
	say "reusing the source disk $DISK ($(cat "$READY"))"
fi

# --- measuring ------------------------------------------------------------------

TSV=$OUT/runs.tsv
printf 'test\trun\twall_s\tcpu_s\trss_kib\tbytes\tload1\n' >"$TSV"
LOG=$OUT/log.txt
: >"$LOG"

# measure NAME BYTES_CMD -- COMMAND...: cold caches, time, append a row.
# BYTES_CMD is evaluated after the run (image bytes, written bytes, ...).
measure() {
	local name=$1 run=$2 bytes_cmd=$3 t0 t1 tv=$WORK/time.out wall cpu rss bytes load
	shift 3
	drop_caches
	echo "== $name run $run: $*" >>"$LOG"
	load=$(cut -d' ' -f1 /proc/loadavg) # other work on the machine skews a run
	t0=$(date +%s.%N)
	/usr/bin/time -v -o "$tv" bash -c "$*" >>"$LOG" 2>&1 || {
		tail -20 "$LOG" >&2
		die "$name failed (see $LOG)"
	}
	t1=$(date +%s.%N)
	wall=$(echo "$t0 $t1" | awk '{ printf "%.2f", $2 - $1 }')
	cpu=$(awk -F': ' '/User time|System time/ { s += $2 } END { printf "%.2f", s }' "$tv")
	rss=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$tv")
	bytes=$(eval "$bytes_cmd")
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$run" "$wall" "$cpu" "$rss" "$bytes" \
		"$load" >>"$TSV"
	say "$(printf '%-22s run %s: %7.2f s wall, %7.2f s cpu, %6d MiB rss, %s bytes, load %s' \
		"$name" "$run" "$wall" "$cpu" $((rss / 1024)) "$bytes" "$load")"
}

# dev_rate NAME RUN read|write DEV [BYTES]: sequential O_DIRECT bandwidth, 4 MiB
# requests, one at a time (what dd bs=4M iflag/oflag=direct does), over the whole
# device or its first BYTES.
# fio writes non-zero (random, lightly scrambled) buffers: storage below a VM
# may shortcut zeros, so a write test with dd if=/dev/zero can read high.
dev_rate() {
	local name=$1 run=$2 rw=$3 dev=$4 size=${5:-$DISK_BYTES} load json bytes secs line ro=()
	[ "$rw" = read ] && ro=(--readonly)
	drop_caches
	load=$(cut -d' ' -f1 /proc/loadavg)
	if command -v fio >/dev/null; then
		json=$WORK/fio.json
		fio --name="$name" --filename="$dev" --rw="$rw" --bs=4M --direct=1 --ioengine=psync \
			--iodepth=1 --size="$size" --end_fsync=1 "${ro[@]}" \
			--output-format=json --output="$json" >>"$LOG" 2>&1 || die "fio $rw on $dev failed"
		bytes=$(jq ".jobs[0].$rw.io_bytes" "$json")
		secs=$(jq ".jobs[0].job_runtime / 1000" "$json")
		line="fio $rw: $bytes bytes in $secs s"
	else
		if [ "$rw" = read ]; then
			line=$(dd if="$dev" of=/dev/null bs=4M iflag=direct 2>&1 | grep copied)
		else
			line=$(dd if=/dev/zero of="$dev" bs=4M count=$((size / 4194304)) oflag=direct \
				conv=fsync 2>&1 | grep copied)
		fi || die "dd $rw on $dev failed"
		bytes=$(echo "$line" | awk '{ print $1 }')
		secs=$(echo "$line" | awk '{ print $(NF-3) }')
	fi
	echo "== $name run $run: $line" >>"$LOG"
	printf '%s\t%s\t%s\t0\t0\t%s\t%s\n' "$name" "$run" "$secs" "$bytes" "$load" >>"$TSV"
	say "$(printf '%-22s run %s: %s, %.0f MB/s, load %s' "$name" "$run" "$line" \
		"$(awk "BEGIN { print $bytes / $secs / 1e6 }")" "$load")"
}

TARGET=$WORK/target.img
rm -f "$TARGET"
truncate -s "${GIB}G" "$TARGET"
# --direct-io=on: the loop devices bypass the page cache for their backing
# files, so they behave like disks and dropping caches before a run is enough
attach SRC "$DISK" --direct-io=on --read-only
attach TGT "$TARGET" --direct-io=on
owned "$TGT" "$TARGET"
[ "$(blockdev --getsize64 "$SRC")" = "$(blockdev --getsize64 "$TGT")" ] || die "size mismatch"
partitions "$SRC"
DISK_BYTES=$(blockdev --getsize64 "$SRC")
COUNT_4M=$((DISK_BYTES / 4194304)) # whole 4 MiB blocks: dd stops there, not at ENOSPC
say "source $SRC ($DISK), target $TGT ($TARGET), $RUNS runs each"
for d in "$SRC" "$TGT"; do
	[ "$(losetup -n -O DIO "$d" | tr -d ' ')" = 1 ] || die "$d: the kernel refused --direct-io=on"
done

want() { case " $ONLY " in *" $1 "*) return 0 ;; esac; return 1; }

# encryption at rest, on by default: the key for every imager run, and the
# on/off pair (group "crypt")
. "$BENCH_DIR/crypt.sh"
# flash on a device slower than the CPU (group "throttle")
. "$BENCH_DIR/throttle.sh"

STORE=$WORK/store
PC=$WORK/partclone
DDZ=$WORK/disk.dd.zst

# One function per measured command; the runs go round-robin (every command
# once per round), so a change in the machine's load hits all tools alike.

run_imager_capture() {
	rm -rf "$STORE"
	# image bytes: the store's files (chunks, manifest, config), as for the peers
	measure imager-capture "$1" \
		'find "$STORE" -type f -printf "%s\n" | awk "{ s += \$1 } END { print s }"' \
		"'$IMAGER' capture '$SRC' --store '$STORE' --image bench --progress=json" \
		"> '$WORK/capture.json'"
	grep '"phase":"done"' "$WORK/capture.json" >"$WORK/capture.done"
}

run_partclone_capture() {
	rm -rf "$PC"
	mkdir -p "$PC"
	# what Clonezilla saves: the GPT, the BIOS-boot partition raw, each file
	# system with partclone, all through zstd -T0 -3
	measure partclone-capture "$1" 'du -scb "$PC"/* | tail -1 | cut -f1' \
		"set -e -o pipefail;" \
		"sgdisk --backup='$PC/gpt.sgdisk' '$SRC' >/dev/null;" \
		"dd if='${SRC}p1' bs=4M status=none | zstd -T0 -3 -q > '$PC/p1.dd.zst';" \
		"partclone.vfat -c -s '${SRC}p2' -o - 2>>'$PC/log' | zstd -T0 -3 -q > '$PC/p2.vfat.zst';" \
		"partclone.ext4 -c -s '${SRC}p3' -o - 2>>'$PC/log' | zstd -T0 -3 -q > '$PC/p3.ext4.zst'"
}

run_dd_capture() {
	rm -f "$DDZ"
	measure dd-capture "$1" 'stat -c %s "$DDZ"' \
		"set -e -o pipefail; dd if='$SRC' bs=4M status=none | zstd -T0 -3 -q > '$DDZ'"
	rm -f "$DDZ"
}

# check_target NAME: the flashed root is clean and holds the same random files
check_target() {
	local mnt=$WORK/mnt
	partitions "$TGT"
	e2fsck -fn "${TGT}p3" >>"$LOG" 2>&1 || die "$1: e2fsck of the flashed root failed"
	mkdir -p "$mnt"
	domount -o ro,noload "${TGT}p3" "$mnt"
	(cd "$mnt/data" && sha256sum --quiet -c "$CACHE/random.sha256") >>"$LOG" 2>&1 ||
		die "$1: flashed files differ from the source"
	doumount "$mnt"
	partx -d "$TGT" 2>/dev/null || true
	say "$1: flashed disk checked (e2fsck -fn clean, random files equal)"
}

# flash_phase_rows NAME RUN JSON: rows NAME:authenticate and NAME:write (wall = the
# phase's seconds, bytes = written bytes) from imager flash --progress=json output
flash_phase_rows() {
	local auth write bytes
	auth=$(grep '"phase":"authenticate"' "$3" | tail -1 | sed -n 's/.*"elapsed_s":\([0-9.]*\).*/\1/p')
	write=$(sed -n 's/.*"phase":"done".*"write_seconds":\([0-9.]*\).*/\1/p' "$3")
	bytes=$(sed -n 's/.*"phase":"done".*"written_bytes":\([0-9]*\).*/\1/p' "$3")
	printf '%s:authenticate\t%s\t%s\t0\t0\t%s\t0\n' "$1" "$2" "${auth:-0}" "$bytes" >>"$TSV"
	printf '%s:write\t%s\t%s\t0\t0\t%s\t0\n' "$1" "$2" "$write" "$bytes" >>"$TSV"
}

# run_imager_flash RUN verify|no-verify [NAME-PREFIX]
run_imager_flash() {
	local opt=
	[ "$2" = no-verify ] && opt=--no-verify
	owned "$TGT" "$TARGET"
	partx -d "$TGT" 2>/dev/null || true
	measure "${3:-imager-}flash-$2" "$1" \
		"sed -n 's/.*\"written_bytes\":\([0-9]*\).*/\1/p' '$WORK/flash.json'" \
		"'$IMAGER' flash bench '$TGT' --store '$STORE' --yes $opt --progress=json" \
		"> '$WORK/flash.json'"
	grep '"phase":"done"' "$WORK/flash.json" >>"$LOG"
	# the phases inside the run, as rows of their own: NAME:authenticate (the
	# pass over an encrypted store's chunks before any write) and NAME:write
	flash_phase_rows "${3:-imager-}flash-$2" "$1" "$WORK/flash.json"
	if [ "$1" = 1 ]; then check_target "${3:-imager-}flash-$2"; fi
}

run_partclone_restore() {
	owned "$TGT" "$TARGET"
	partx -d "$TGT" 2>/dev/null || true
	# Clonezilla's restore: table, then each partition; sync to be durable
	measure partclone-restore "$1" 'echo 0' \
		"set -e -o pipefail;" \
		"sgdisk --load-backup='$PC/gpt.sgdisk' '$TGT' >/dev/null 2>&1 || true;" \
		"partx -a '$TGT'; udevadm settle 2>/dev/null || true;" \
		"zstd -dc '$PC/p1.dd.zst' | dd of='${TGT}p1' bs=4M status=none;" \
		"zstd -dc '$PC/p2.vfat.zst' | partclone.vfat -r -s - -o '${TGT}p2' 2>>'$PC/log';" \
		"zstd -dc '$PC/p3.ext4.zst' | partclone.ext4 -r -s - -o '${TGT}p3' 2>>'$PC/log';" \
		"sync"
	if [ "$1" = 1 ]; then check_target partclone-restore; fi
	partx -d "$TGT" 2>/dev/null || true
}

run_bmaptool_copy() {
	owned "$TGT" "$TARGET"
	partx -d "$TGT" 2>/dev/null || true
	measure bmaptool-copy "$1" \
		"awk -F'[<>]' '/<MappedBlocksCount>/ { m = \$3 } /<BlockSize>/ { b = \$3 } END { printf \"%.0f\\n\", m * b }' '$DISK.bmap'" \
		"bmaptool -q copy --bmap '$DISK.bmap' '$DISK' '$TGT'"
	if [ "$1" = 1 ]; then check_target bmaptool-copy; fi
}

# The target is written in full first (by the device write test or a plain dd),
# so every later run overwrites allocated blocks of the backing file.
if want device; then
	for r in $(seq 1 "$RUNS"); do
		dev_rate device-read "$r" read "$SRC"
		owned "$TGT" "$TARGET"
		dev_rate device-write "$r" write "$TGT"
	done
else
	owned "$TGT" "$TARGET"
	dd if=/dev/zero of="$TGT" bs=4M count="$COUNT_4M" oflag=direct conv=fsync status=none
fi

# flash needs a store and partclone images: one capture round makes them
if want capture; then
	for r in $(seq 1 "$RUNS"); do
		run_imager_capture "$r"
		run_partclone_capture "$r"
		run_dd_capture "$r"
	done
elif want flash || want throttle; then
	run_imager_capture 1
	run_partclone_capture 1
fi
USED_BYTES=$(sed -n 's/.*"used_bytes":\([0-9]*\).*/\1/p' "$WORK/capture.done" 2>/dev/null || true)

if want flash; then
	for r in $(seq 1 "$RUNS"); do
		run_imager_flash "$r" verify
		run_imager_flash "$r" no-verify
		run_partclone_restore "$r"
		run_bmaptool_copy "$r"
	done
fi

if want crypt; then
	crypt_runs
fi

if want throttle; then
	throttle_runs
fi

detach "$TGT"
detach "$SRC"

# --- report ---------------------------------------------------------------------

# med TEST COLUMN: median of a column over the runs of TEST ("" if none)
med() {
	awk -F'\t' -v t="$1" -v c="$2" '$1 == t { print $c }' "$TSV" | sort -g |
		awk '{ v[NR] = $1 } END { if (NR) printf "%s", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
calc() { awk "BEGIN { printf \"$1\", $2 }"; }
have() { [ -n "$(med "$1" 3)" ]; }

{
	echo "imager bench, $(date -u +%Y-%m-%dT%H:%M:%SZ), $(uname -r), $(nproc) CPUs,"
	echo "  $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
	echo "disk: $GIB GiB GPT (1 MiB BIOS-boot, $ESP_MIB MiB FAT32 ESP, ext4 root), $(cat "$READY")"
	echo "$("$IMAGER" --version 2>&1 | head -1) ($IMAGER)"
	echo "imager used bytes (what capture reads): ${USED_BYTES:-?}; runs: $RUNS, medians"
	loads() { awk -F'\t' 'NR > 1 && $1 !~ /:/ { print $7 }' "$TSV" | sort -g; }
	echo "1-min load average at run starts: median $(loads |
		awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'), max $(loads | tail -1)" \
		"(on $(nproc) CPUs; 0 = idle)"
	echo
	printf '%-24s %9s %9s %9s %14s %10s\n' test wall_s cpu_s rss_MiB bytes MB/s
	for t in device-read device-write imager-capture partclone-capture dd-capture \
		imager-flash-verify imager-flash-no-verify partclone-restore bmaptool-copy; do
		have "$t" || continue
		w=$(med "$t" 3) c=$(med "$t" 4) m=$(med "$t" 5) b=$(med "$t" 6)
		case $t in
		device-*) rate=$(calc %.0f "$b / $w / 1e6") ;;
		dd-capture) rate=$(calc %.0f "$DISK_BYTES / $w / 1e6") ;;
		*) rate=$(calc %.0f "${USED_BYTES:-0} / $w / 1e6") ;;
		esac
		printf '%-24s %9.2f %9.2f %9.0f %14s %10s\n' "$t" "$w" "$c" "$(calc %.0f "$m / 1024")" \
			"$b" "$rate"
	done
	echo "(MB/s: device rows = bytes moved; dd-capture = whole disk; others = imager's"
	echo " used bytes / wall, to compare tools on the same data. bytes: image size for"
	echo " captures, written bytes for imager flash, mapped bytes for bmaptool.)"
	echo
	echo "ratios vs targets:"
	verdict() { awk "BEGIN { exit !($1) }" && echo ok || echo MISSED; }
	if have imager-capture && have partclone-capture; then
		x=$(calc %.2f "$(med partclone-capture 3) / $(med imager-capture 3)")
		printf '  capture speed vs partclone|zstd:    %6sx   (target >= 5x)     %s\n' "$x" \
			"$(verdict "$x >= 5")"
		x=$(calc %.3f "$(med imager-capture 6) / $(med partclone-capture 6)")
		printf '  image size vs partclone|zstd:       %6sx   (target <= 1x)     %s\n' "$x" \
			"$(verdict "$x <= 1")"
	fi
	if have imager-flash-verify && have partclone-restore; then
		x=$(calc %.2f "$(med partclone-restore 3) / $(med imager-flash-verify 3)")
		printf '  flash (verify) vs partclone restore: %5sx   (target >= 3x)     %s\n' "$x" \
			"$(verdict "$x >= 3")"
		x=$(calc %.2f "$(med partclone-restore 3) / $(med imager-flash-no-verify 3)")
		printf '  flash (no-verify) vs partclone:     %6sx   (target >= 3x)     %s\n' "$x" \
			"$(verdict "$x >= 3")"
	fi
	if have imager-flash-no-verify && have device-write; then
		dw=$(calc %.1f "$(med device-write 6) / $(med device-write 3) / 1e6")
		for v in no-verify verify; do
			fr=$(calc %.1f "$(med imager-flash-$v 6) / $(med imager-flash-$v 3) / 1e6")
			x=$(calc %.0f "100 * $fr / $dw")
			printf '  flash %-9s write rate vs O_DIRECT write: %s / %s MB/s = %s%% (target >= 90%%) %s\n' \
				"$v" "$fr" "$dw" "$x" "$(verdict "$x >= 90")"
		done
		if have imager-flash-no-verify:write; then
			fr=$(calc %.1f "$(med imager-flash-no-verify:write 6) / $(med imager-flash-no-verify:write 3) / 1e6")
			printf '  flash no-verify, write phase only: %s MB/s = %s%%; before it %s s authenticating the chunks\n' \
				"$fr" "$(calc %.0f "100 * $fr / $dw")" "$(med imager-flash-no-verify:authenticate 3)"
		fi
	fi
	for t in imager-capture imager-flash-verify imager-flash-no-verify; do
		have "$t" || continue
		x=$(calc %.0f "$(med "$t" 5) / 1024")
		printf '  peak RSS %-24s %5s MiB (target < 256 MiB) %s\n' "$t:" "$x" \
			"$(verdict "$x < 256")"
	done
	crypt_report
	throttle_report
} >"$OUT/results.txt"
cat "$OUT/results.txt"
say "results in $OUT/results.txt, every run in $TSV, commands and output in $LOG"
