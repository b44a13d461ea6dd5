#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
test_description='crash safety: SIGKILL at random points of capture, snapshot, gc, deprecate, flash'
. "$(dirname "$0")/../lib/test-lib.sh"

# Every operation runs once uncut to measure it, then many times killed with
# SIGKILL after a random delay in [0, that time + 10 ms]. The delays come from
# an LCG seeded with SIGKILL_SEED (printed; set it to replay a run). After
# each kill:
#   - `imager store verify` is clean: every manifest and deprecation record
#     decodes, every chunk re-hashes, no listed image or snapshot names a
#     missing chunk (so no half image is listed);
#   - a capture or snapshot that finished is listed; the name of one cut
#     short before it published can be captured again; gc leaves every
#     listed image whole and the next gc finishes; a deprecation record
#     holds the old or the new state;
#   - a flash target holds no valid partition table (blkid -p finds no
#     PTTYPE and sfdisk --dump fails), or the whole image (imager verify is
#     clean), or, if the kill came before flash touched it, its old image.
# Verbs that this build lacks (imager --help) are skipped with a note.

test_have_prereq LOOP || skip_all "needs root and loop devices"

# Everything lives on a private tmpfs: a SIGKILL loses no page cache, so
# what is tested does not depend on the disk, and some hundred store writes
# and flashes with their fsyncs stay fast on a busy machine.
W=$TRASH/tmpfs
mkdir "$W" && mount -t tmpfs -o size=1g,mode=0700 tmpfs "$W" ||
	skip_all "cannot mount a tmpfs on $W"
# loop devices over files in $W go first, else the tmpfs stays busy
sigkill_cleanup() {
	local pid dev
	[ -f "$TRASH/.pids" ] || return 0 # done already, and test_done removed $TRASH
	while read -r pid; do
		[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null
	done <"$TRASH/.pids"
	while read -r dev; do
		[ -n "$dev" ] || continue
		partx -d "$dev" 2>/dev/null
		losetup -d "$dev" 2>/dev/null
	done <"$TRASH/.loops"
	: >"$TRASH/.pids"; : >"$TRASH/.loops"
	mountpoint -q "$W" && { umount "$W" 2>/dev/null || umount -l "$W"; }
	return 0
}
trap 'sigkill_cleanup; test_cleanup' EXIT
trap 'sigkill_cleanup; test_cleanup; exit 130' INT TERM
cd "$W"
export IMAGER_STORE=$W/store
SIGKILL_SEED=${SIGKILL_SEED:-$(( $(date +%s) % 1000000 ))}
SIGKILL_ROUNDS=${SIGKILL_ROUNDS:-16}
say "SIGKILL_SEED=$SIGKILL_SEED SIGKILL_ROUNDS=$SIGKILL_ROUNDS (replay: SIGKILL_SEED=$SIGKILL_SEED)"
echo "$SIGKILL_SEED" >"$TRASH/rng"

NOISE_BYTES=$((32 << 20))

# --- helpers ---------------------------------------------------------------------

# delay MAX_MS: a delay in seconds ("0.123") drawn from the LCG in $TRASH/rng
delay() {
	local s ms
	s=$(cat "$TRASH/rng")
	s=$(( (s * 1103515245 + 12345) % 2147483648 ))
	echo "$s" >"$TRASH/rng"
	ms=$(( (s >> 8) % ($1 + 1) ))
	printf '%d.%03d\n' $((ms / 1000)) $((ms % 1000))
}

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

# calibrate NAME CMD...: runs CMD uncut, records its time (+10 ms) as NAME.max
calibrate() {
	local name=$1 t0 t1
	shift
	t0=$(now_ms)
	"$@" >/dev/null
	t1=$(now_ms)
	echo $(( t1 - t0 + 10 )) >"$TRASH/$name.max"
	say "$name: uncut run took $((t1 - t0)) ms; kills in [0, $(cat "$TRASH/$name.max")] ms"
}

# killed NAME ROUND CMD...: runs CMD (progress to NAME.out), SIGKILLs it after a
# random delay; prints "completed" or "killed", fails on any other exit status
killed() {
	local name=$1 round=$2 d pid rc=0 outcome
	shift 2
	d=$(delay "$(cat "$TRASH/$name.max")")
	"$@" >"$TRASH/$name.out" 2>"$TRASH/$name.err" &
	pid=$!
	register_pid "$pid"
	sleep "$d"
	kill -9 "$pid" 2>/dev/null || true
	wait "$pid" || rc=$?
	case $rc in
	0) outcome=completed ;;
	137) outcome=killed ;;
	*) echo "$name round $round: '$*' failed with status $rc:" >&2
	   cat "$TRASH/$name.err" >&2
	   return 1 ;;
	esac
	echo "$name $round +${d}s $outcome" >>"$TRASH/kills.log"
	echo "$outcome"
}

# the store is consistent (see the top); prints nothing on success
store_clean() {
	"$IMAGER" store verify >"$TRASH/verify.out" 2>&1 ||
		{ echo "store verify failed:" >&2; cat "$TRASH/verify.out" >&2; return 1; }
	"$IMAGER" images list --show-deprecated --json >"$TRASH/images.json" &&
		jq -e '.images | type == "array"' "$TRASH/images.json" >/dev/null
}

image_listed() { jq -e --arg n "$1" 'any(.images[]; .name == $n)' "$TRASH/images.json" >/dev/null; }
snapshot_listed() {
	"$IMAGER" snapshots list --json | jq -e --arg n "$1" 'any(.snapshots[]; .name == $n)' >/dev/null
}

# new random bytes in the blocks of /noise.bin of the source disk, in place
refresh_noise() {
	head -c "$NOISE_BYTES" /dev/urandom |
		dd of="$W/src.img" bs=4096 seek="$(cat "$W/noise.block")" conv=notrunc \
			iflag=fullblock status=none
}

# has VERB SUB: true if this build has `imager VERB SUB`
has() { "$IMAGER" "$@" --help >/dev/null 2>&1; }

# some rounds must really have been cut short (most are, but a loaded
# machine can make the calibration run slow)
enough_kills() {
	local n
	n=$(grep -c "^$1 .* killed$" "$TRASH/kills.log" || true)
	say "$1: $n of $SIGKILL_ROUNDS rounds killed mid-run"
	[ "$n" -ge $((SIGKILL_ROUNDS / 5)) ]
}

# --- setup ---------------------------------------------------------------------

test_expect_success 'a 128 MiB GPT source with 32 MiB of data in one extent; two images' '
	truncate -s 128M src.img &&
	printf "label: gpt\nstart=2048, size=253952, type=linux, name=root\n" | sfdisk -q src.img &&
	mkdir stage && head -c "$NOISE_BYTES" /dev/urandom >stage/noise.bin &&
	echo hello >stage/hello.txt &&
	mke2fs -F -q -t ext4 -b 4096 -d stage fs.img 126976k &&
	first=$(debugfs -R "bmap /noise.bin 0" fs.img 2>/dev/null) &&
	last=$(debugfs -R "bmap /noise.bin $((NOISE_BYTES / 4096 - 1))" fs.img 2>/dev/null) &&
	expect_eq "$last" "$((first + NOISE_BYTES / 4096 - 1))" "contiguous noise.bin" &&
	echo $(( (1 << 20) / 4096 + first )) >noise.block &&
	dd if=fs.img of=src.img bs=1M seek=1 conv=notrunc,sparse status=none &&
	"$IMAGER" capture src.img --image base --progress=none &&
	refresh_noise &&
	calibrate capture "$IMAGER" capture src.img --image cap-cal --progress=none &&
	"$IMAGER" images delete cap-cal >/dev/null && "$IMAGER" store gc >/dev/null &&
	truncate -s 128M alt.img &&
	printf "label: dos\nstart=4096, size=200000, type=83\n" | sfdisk -q alt.img &&
	mke2fs -F -q -t ext4 -E offset=$((4096 * 512)) alt.img 64M &&
	"$IMAGER" capture alt.img --image alt --progress=none &&
	store_clean && image_listed base && image_listed alt
'

# --- capture -------------------------------------------------------------------

test_expect_success 'capture: killed at random points, no half image, names reusable' '
	for i in $(seq "$SIGKILL_ROUNDS"); do
		refresh_noise
		o=$(killed capture "$i" "$IMAGER" capture src.img --image "cap-$i" --progress=json)
		store_clean
		if [ "$o" = completed ]; then
			image_listed "cap-$i"
		elif ! image_listed "cap-$i" && [ $((i % 4)) -eq 0 ]; then
			# the name of an unpublished image is free again
			"$IMAGER" capture src.img --image "cap-$i" --progress=none >/dev/null
			store_clean
			image_listed "cap-$i"
		fi
		if image_listed "cap-$i"; then
			"$IMAGER" images delete "cap-$i" >/dev/null
		fi
		"$IMAGER" store gc >/dev/null
	done &&
	store_clean &&
	sed -n "s/^capture /# capture /p" "$TRASH/kills.log" &&
	enough_kills capture
'

# --- snapshots create ---------------------------------------------------------------

if has snapshots create; then
test_expect_success 'snapshots create: killed at random points, no half snapshot' '
	refresh_noise &&
	calibrate snapshot "$IMAGER" snapshots create src.img --name snap-cal --progress=none &&
	for i in $(seq "$SIGKILL_ROUNDS"); do
		refresh_noise
		o=$(killed snapshot "$i" "$IMAGER" snapshots create src.img --name "snap-$i" \
			--progress=json)
		store_clean
		if [ "$o" = completed ]; then
			snapshot_listed "snap-$i"
		fi
		if snapshot_listed "snap-$i"; then
			"$IMAGER" snapshots delete "snap-$i" >/dev/null
		fi
		"$IMAGER" store gc >/dev/null
	done &&
	store_clean &&
	sed -n "s/^snapshot /# snapshot /p" "$TRASH/kills.log" &&
	enough_kills snapshot
'
else
	say "imager snapshots create: not in this build, skipped"
fi

# --- store gc ------------------------------------------------------------------

if has store gc && has images delete; then
test_expect_success 'store gc: killed at random points, nothing referenced is lost' '
	refresh_noise &&
	"$IMAGER" capture src.img --image junk-cal --progress=none &&
	"$IMAGER" images delete junk-cal >/dev/null &&
	calibrate gc "$IMAGER" store gc &&
	for i in $(seq "$SIGKILL_ROUNDS"); do
		refresh_noise
		"$IMAGER" capture src.img --image "junk-$i" --progress=none >/dev/null
		"$IMAGER" images delete "junk-$i" >/dev/null
		o=$(killed gc "$i" "$IMAGER" store gc)
		store_clean
		image_listed base && image_listed alt && ! image_listed "junk-$i"
		# a killed gc leaves no lock behind and the next one finishes the job
		"$IMAGER" store gc --no-wait >/dev/null
		store_clean
	done &&
	sed -n "s/^gc /# gc /p" "$TRASH/kills.log"
'
else
	say "imager store gc / images delete: not in this build, skipped"
fi

# --- images deprecate ----------------------------------------------------------------

if has images deprecate; then
test_expect_success 'images deprecate: killed at random points, the old or the new state' '
	"$IMAGER" capture alt.img --image old --progress=none &&
	calibrate deprecate "$IMAGER" images deprecate old --state DEPRECATED --replacement alt &&
	prev=DEPRECATED &&
	for i in $(seq "$SIGKILL_ROUNDS"); do
		if [ $((i % 2)) -eq 0 ]; then want=DEPRECATED; else want=ACTIVE; fi
		if [ "$want" = DEPRECATED ]; then
			o=$(killed deprecate "$i" "$IMAGER" images deprecate old --state DEPRECATED \
				--replacement alt)
		else
			o=$(killed deprecate "$i" "$IMAGER" images deprecate old --state ACTIVE)
		fi
		store_clean
		state=$(jq -r ".images[] | select(.name == \"old\") | .state" "$TRASH/images.json")
		if [ "$o" = completed ]; then
			expect_eq "$state" "$want" "state of old after round $i"
		elif [ "$state" != "$want" ] && [ "$state" != "$prev" ]; then
			echo "round $i: state $state is neither $prev nor $want" >&2
			false
		fi
		prev=$state
	done &&
	sed -n "s/^deprecate /# deprecate /p" "$TRASH/kills.log"
'
else
	say "imager images deprecate: not in this build, skipped"
fi

# --- flash ---------------------------------------------------------------------------

# table_state DEV: "none" (no PTTYPE and sfdisk cannot read a table) or "valid"
table_state() {
	local pttype
	pttype=$(blkid -p -o value -s PTTYPE "$1" 2>/dev/null || true)
	if [ -z "$pttype" ] && ! sfdisk --dump "$1" >/dev/null 2>&1; then
		echo none
	else
		echo valid
	fi
}

test_expect_success LOOP 'flash: a killed flash leaves no valid table, or the whole image' '
	truncate -s 128M dst.img && dst=$(loop_attach dst.img) &&
	calibrate flash "$IMAGER" flash base "$dst" --yes --progress=none &&
	"$IMAGER" verify base "$dst" >/dev/null &&
	prev=base &&
	for i in $(seq "$SIGKILL_ROUNDS"); do
		if [ $((i % 2)) -eq 0 ]; then img=base; else img=alt; fi
		o=$(killed flash "$i" "$IMAGER" flash "$img" "$dst" --yes --progress=json)
		st=$(table_state "$dst")
		if [ "$o" = completed ]; then
			"$IMAGER" verify "$img" "$dst" >/dev/null
			what=complete
		elif [ "$st" = none ]; then
			what="no table"
		elif "$IMAGER" verify "$img" "$dst" >/dev/null 2>&1; then
			what=complete
		elif [ -n "$prev" ] && "$IMAGER" verify "$prev" "$dst" >/dev/null 2>&1; then
			what="untouched ($prev)"
		else
			echo "round $i: a valid partition table over an incomplete image:" >&2
			sfdisk --dump "$dst" >&2 || true
			tail -3 "$TRASH/flash.out" >&2
			false
		fi
		case $what in complete) prev=$img ;; "no table") prev= ;; esac
		echo "flash $i $img $what ($(grep -c . "$TRASH/flash.out" || true) progress lines)" >>outcomes.log
	done &&
	sed -n "s/^/# /p" outcomes.log &&
	enough_kills flash &&
	grep -q "no table" outcomes.log &&
	store_clean
'

sigkill_cleanup
test_done
