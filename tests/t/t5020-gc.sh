#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
test_description='store gc removes only unreferenced chunks, waits for a running capture; store verify finds damage'
. "$(dirname "$0")/../lib/test-lib.sh"
. "$TESTS_DIR/lib/disks.sh"

export IMAGER_STORE=$TRASH/store
unset IMAGER_NOW

chunks() { find "$IMAGER_STORE/chunks" -name '*.chunk' | wc -l; }

# data_disk FILE SIZE DATA_BYTES SEED: a GPT disk with one partition at 1 MiB
# holding DATA_BYTES of pseudo-random bytes (no file system: captured raw)
data_disk() {
	truncate -s "$2" "$1" &&
	printf 'label: gpt\nlabel-id: %s\nstart=1MiB, type=L\n' "$DISKS_GPT_ID" |
		sfdisk -q --no-reread --no-tell-kernel "$1" >/dev/null &&
	_disks_prng "$4" "$3" | dd of="$1" bs=1M seek=1 conv=notrunc,sparse status=none
}

test_expect_success 'gc removes exactly the chunks no image uses; dry-run removes nothing' '
	data_disk a.img 64M $((24 << 20)) shared &&
	cp a.img b.img &&
	_disks_prng b-only $((8 << 20)) | dd of=b.img bs=1M seek=32 conv=notrunc status=none &&
	"$IMAGER" capture a.img --image a --progress=none &&
	"$IMAGER" capture b.img --image b --progress=none &&
	"$IMAGER" images describe b --json >b.json &&
	na=$("$IMAGER" images describe a --json | jq .storage.chunks) &&
	jq -e ".storage.unique_chunks == 2 and .storage.chunks == $na + 2" b.json &&
	n=$(chunks) && expect_eq "$n" $((na + 2)) "chunk files" &&
	mkdir -p "$IMAGER_STORE/chunks/zz" && echo keep >"$IMAGER_STORE/chunks/zz/notes.txt" &&
	old=$(find "$IMAGER_STORE/chunks" -name "*.chunk" | head -1) &&
	echo partial >"$old.tmp.00112233aabbccdd" && touch -d "3 hours ago" "$old.tmp.00112233aabbccdd" &&
	echo partial >"$old.tmp.ffeeddccbbaa9988" &&
	"$IMAGER" store gc >gc.out &&
	grep -q "^Removed 0 unreferenced chunks (0 B); kept $n chunks (.*) referenced by 2 images and 0 snapshots\.$" gc.out &&
	grep -qx "Removed 1 stale temporary file (8 B)." gc.out &&
	test ! -e "$old.tmp.00112233aabbccdd" && test -e "$old.tmp.ffeeddccbbaa9988" &&
	test -e "$IMAGER_STORE/chunks/zz/notes.txt" &&
	"$IMAGER" images delete b >/dev/null &&
	"$IMAGER" store gc --dry-run --json >dry.json &&
	jq -e ".dry_run and .removed_chunks == 2 and .kept_chunks == $na and .images == 1" dry.json &&
	expect_eq "$(chunks)" "$n" "chunk files after --dry-run" &&
	"$IMAGER" store gc --json >gc.json &&
	jq -e "(.dry_run | not) and .removed_chunks == 2 and .kept_chunks == $na and
		.removed_bytes == $(jq .storage.unique b.json)" gc.json &&
	expect_eq "$(chunks)" "$na" "chunk files after gc" &&
	"$IMAGER" store verify >verify.out &&
	grep -q "^Store .* verified: $na chunks (.*), 1 image, 0 snapshots, no problems\.$" verify.out &&
	rm -f a2.img && "$IMAGER" flash a a2.img --yes --progress=none >/dev/null && cmp a.img a2.img
'

test_expect_success 'gc beside a running capture waits for it and loses nothing of it' '
	data_disk junk.img 32M $((12 << 20)) junk &&
	"$IMAGER" capture junk.img --image junk --progress=none &&
	"$IMAGER" images delete junk >/dev/null &&
	junk=$(( $(chunks) - $("$IMAGER" images describe a --json | jq .storage.chunks) )) &&
	[ "$junk" -ge 3 ] &&
	data_disk big.img 1G $((896 << 20)) big &&
	before=$(chunks) &&
	{ "$IMAGER" capture big.img --image big --progress=json >cap.json 2>cap.err & } &&
	cap=$! && register_pid $cap &&
	# wait until the capture has stored some chunks of its own, and is still running
	for i in $(seq 1 600); do
		[ $(chunks) -ge $((before + 8)) ] && break
		kill -0 $cap 2>/dev/null || break
		sleep 0.05
	done &&
	kill -0 $cap || { echo "the capture ended before gc could start: make big.img bigger" >&2; false; } &&
	expect_exit 4 "$IMAGER" store gc --no-wait 2>nowait.err &&
	echo "imager: Store '\''$IMAGER_STORE'\'' is in use by another imager process (a capture, import or gc); not waiting." >expected &&
	test_cmp expected nowait.err &&
	{ "$IMAGER" store gc --json >gc.json 2>gc.err & } && gc=$! && register_pid $gc &&
	wait $cap && wait $gc &&
	echo "Store '\''$IMAGER_STORE'\'' is in use by a capture, import or another writer, waiting..." >expected &&
	test_cmp expected gc.err &&
	jq -e ".removed_chunks == $junk and .images == 2" gc.json &&
	jq -e "select(.phase == \"done\") | .image == \"big\" and .new_chunks > 200" cap.json &&
	"$IMAGER" store verify &&
	rm -f big2.img && "$IMAGER" flash big big2.img --yes --progress=none >/dev/null &&
	cmp big.img big2.img
'

test_expect_success 'store verify reports a flipped chunk byte and a truncated manifest, one line each' '
	"$IMAGER" capture junk.img --image victim --progress=none &&
	id=$("$IMAGER" images describe victim --json | jq -r .digest) &&
	f=$(find "$IMAGER_STORE/chunks" -name "*.chunk" -newer "$IMAGER_STORE/images/big.manifest" | sort | head -1) &&
	hex=$(basename "$f" .chunk) &&
	size=$(stat -c %s "$f") &&
	printf "\x5a" | dd of="$f" bs=1 seek=$((size - 100)) conv=notrunc status=none &&
	m="$IMAGER_STORE/images/a.manifest" && truncate -s $(( $(stat -c %s "$m") - 7 )) "$m" &&
	expect_exit 3 "$IMAGER" store verify >verify.out 2>verify.err &&
	printf "%s\n" "chunk $hex: damaged: does not decode to its ID" \
		"image '\''a'\'': manifest damaged (checksum or structure)" >expected &&
	test_cmp expected verify.out &&
	echo "imager: Store '\''$IMAGER_STORE'\'' has 2 problems." >expected &&
	test_cmp expected verify.err &&
	"$IMAGER" store verify --json >verify.json || true &&
	jq -e "(.problems | length) == 2 and .complete" verify.json &&
	n=$(chunks) &&
	expect_exit 3 "$IMAGER" store gc 2>gc.err &&
	echo "imager: Refusing to collect garbage: image '\''a'\'' cannot be read (damaged), so the chunks it needs are unknown; repair or delete it first." >expected &&
	test_cmp expected gc.err && expect_eq "$(chunks)" "$n" "chunk files after a refused gc" &&
	expect_exit 3 "$IMAGER" flash victim v.img --yes --progress=none 2>flash.err &&
	rm -f "$f" &&
	expect_exit 3 "$IMAGER" store verify >verify.out 2>/dev/null &&
	grep -q "^image '\''victim'\'': disk 0 chunk $hex at offset [0-9]* is missing$" verify.out &&
	expect_eq "$(wc -l <verify.out)" 2 "problem lines"
'

test_expect_success 'snapshots refuse two disks, and nothing is stored' '
	n=$(chunks) &&
	expect_exit 2 "$IMAGER" snapshots create a.img junk.img --name two 2>err &&
	printf "%s\n" "imager snapshots create: a snapshot captures exactly one disk, 2 were given; use '\''imager capture'\'' for an image of several disks" \
		"Try '\''imager snapshots create --help'\'' for more information." >expected &&
	test_cmp expected err &&
	expect_eq "$(chunks)" "$n" "chunk files" &&
	test ! -e "$IMAGER_STORE/snapshots/two.manifest"
'

test_done
