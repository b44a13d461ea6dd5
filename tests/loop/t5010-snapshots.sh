#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
test_description='snapshot chain on a loop disk: 1% of files changed stores at most 2% anew; delete, gc, restore'
. "$(dirname "$0")/../lib/test-lib.sh"
. "$TESTS_DIR/lib/disks.sh"

export IMAGER_STORE=$TRASH/store
unset IMAGER_NOW
test_have_prereq LOOP || skip_all "needs root and loop devices"

N_FILES=200
DISK_SIZE=1536M

# The file system: 200 files of mixed sizes (64 KiB .. 11 MiB, about 1 GiB in
# all) of incompressible bytes, so that every changed chunk costs its full
# 4 MiB in the store and the 2% budget is tested at its hardest.
file_bytes() { # INDEX -> bytes
	local i=$1
	case $((i % 4)) in
	0) echo $(( (64 + (i * 37) % 960) * 1024 )) ;;   # 64 KiB .. 1 MiB
	1) echo $(( (1 + i % 4) * 1048576 + (i * 4096) % 1048576 )) ;;
	*) echo $(( (6 + i % 5) * 1048576 + (i * 12288) % 1048576 )) ;;
	esac
}

test_expect_success LOOP 'a 1.5 GiB loop disk with an ext4 of 200 files (about 1 GiB)' '
	mkdir -p stage/data &&
	for i in $(seq 1 $N_FILES); do
		_disks_prng "file-$i" "$(file_bytes $i)" >stage/data/f$i.bin || exit 1
	done &&
	total=$(du -sb --apparent-size stage | cut -f1) && say "files: $total bytes" &&
	[ "$total" -gt $((900 << 20)) ] && [ "$total" -lt $((1200 << 20)) ] &&
	truncate -s $DISK_SIZE src.img &&
	printf "label: gpt\nlabel-id: %s\nstart=1MiB, type=L, uuid=%s1\n" \
		"$DISKS_GPT_ID" "$DISKS_GPT_PART_UUID_PREFIX" |
		sfdisk -q --no-reread --no-tell-kernel src.img >/dev/null &&
	_disks_mkext4 root.ext4 "$(part_size_bytes src.img 1)" stage "$DISKS_GPT_ROOT_UUID" root &&
	_disks_place src.img root.ext4 "$(part_start_bytes src.img 1)" && rm -f root.ext4 &&
	dumpe2fs -h "src.img?offset=1048576" 2>/dev/null | grep -q "has_journal" &&
	src=$(loop_attach src.img) && echo "$src" >src.dev &&
	ext4_file_sums "$src" 1 >snap1.sums &&
	_disks_dir_sums stage >stage.sums && test_cmp stage.sums snap1.sums
'

test_expect_success LOOP 'first snapshot: everything is new; the summary says so' '
	src=$(cat src.dev) &&
	"$IMAGER" snapshots create "$src" --name snap1 --description "before" >snap1.out &&
	say "$(cat snap1.out)" &&
	grep -qE "^Captured snapshot '\''snap1'\'' of $src: stored [0-9.]+ [KMG]iB new of [0-9.]+ [KMG]iB used \(([0-9]+) of \1 chunks new\), [0-9.]+ s$" snap1.out &&
	"$IMAGER" snapshots describe snap1 --json >snap1.json &&
	jq -e ".kind == \"snapshot\" and .source.type == \"disk\" and .source.nodes == [\"$src\"] and
		.description == \"before\" and (.disks | length) == 1 and .storage.unique == .storage.stored" snap1.json &&
	"$IMAGER" snapshots list --json | jq -e ".snapshots | (length == 1 and .[0].name == \"snap1\")" &&
	"$IMAGER" images list --json | jq -e ".images == []"
'

# Two files of about 2 MiB, each in at most 2 chunks: 4 data chunks (16 MiB,
# incompressible) plus the metadata chunks the rewrite dirties (inode table,
# journal: mostly zero, so they compress to little) against the 2% budget of
# about 21 MiB. Measured: 5 chunks, about 1.6%. A 7 MiB file would dirty 3
# chunks by itself (f17 with f131 measured 7 chunks, 2.0008%): the cost of
# 4 MiB chunks, docs/FORMAT.md "Chunk size".
test_expect_success LOOP 'rewrite 2 of the 200 files (1%) in place on the mounted file system' '
	src=$(cat src.dev) && loop_partitions "$src" && mkdir -p mnt &&
	mount "${src}p1" mnt && register_mount "$TRASH/mnt" &&
	for i in 17 101; do
		_disks_prng "file-$i-v2" "$(stat -c %s mnt/data/f$i.bin)" |
			dd of=mnt/data/f$i.bin conv=notrunc,fsync status=none || exit 1
	done &&
	umount mnt && partx -d "$src" &&
	ext4_file_sums "$src" 1 >snap2.sums &&
	expect_eq "$(diff snap1.sums snap2.sums | grep -c "^>")" 2 "changed files"
'

test_expect_success LOOP 'second snapshot stores at most 2% of the used bytes as new' '
	src=$(cat src.dev) &&
	"$IMAGER" snapshots create "$src" --name snap2 --progress=json >snap2.json &&
	jq -c "select(.phase == \"done\")" snap2.json >done.json &&
	used=$(jq .used_bytes done.json) && new=$(jq .new_stored_bytes done.json) &&
	say "snap2: $new new stored bytes of $used used ($(jq .new_chunks done.json) of $(jq .chunks done.json) chunks new): $(( new * 10000 / used )) / 10000" &&
	jq -e ".kind == \"snapshot\" and .image == \"snap2\" and .new_chunks >= 2" done.json &&
	[ "$new" -gt 0 ] && [ $((new * 100)) -le $((used * 2)) ]
'

test_expect_success LOOP 'delete the first snapshot; gc frees what only it used; the store verifies' '
	unique=$("$IMAGER" snapshots describe snap1 --json | jq .storage.unique_chunks) &&
	[ "$unique" -ge 2 ] &&
	"$IMAGER" snapshots delete snap1 >out &&
	echo "Deleted snapshot '\''snap1'\''; chunks no other image or snapshot uses are freed by '\''imager store gc'\''." >expected &&
	test_cmp expected out &&
	"$IMAGER" store gc --json >gc.json &&
	jq -e ".removed_chunks == $unique and .snapshots == 1 and .images == 0" gc.json &&
	"$IMAGER" store verify &&
	expect_exit 5 "$IMAGER" snapshots restore snap1 never.img --yes 2>err &&
	grep -q "Snapshot '\''snap1'\'' does not exist" err && test ! -e never.img
'

test_expect_success LOOP 'restore the second snapshot onto a blank loop disk: files equal' '
	truncate -s $DISK_SIZE dst.img && dst=$(loop_attach dst.img) && echo "$dst" >dst.dev &&
	"$IMAGER" snapshots restore snap2 "$dst" --yes --progress=none >out &&
	grep -q "^Restored snapshot '\''snap2'\'' onto $dst: .*, verified$" out &&
	ext4_file_sums "$dst" 1 >restored.sums && test_cmp snap2.sums restored.sums &&
	e2fsck -fn "$dst?offset=$(part_start_bytes "$dst" 1)" >/dev/null
'

test_expect_success LOOP 'an image made from the snapshot copies no chunk and outlives it' '
	n=$(find "$IMAGER_STORE/chunks" -name "*.chunk" | wc -l) &&
	"$IMAGER" images create golden --source-snapshot snap2 --family fleet >out &&
	grep -q "^Created image '\''golden'\'' from snapshot '\''snap2'\'': 1 disk, .* no chunk data copied" out &&
	expect_eq "$(find "$IMAGER_STORE/chunks" -name "*.chunk" | wc -l)" "$n" "chunk files" &&
	"$IMAGER" images describe golden --json |
		jq -e ".source.type == \"snapshot\" and .source.name == \"snap2\" and .family == \"fleet\"" &&
	"$IMAGER" snapshots delete snap2 >/dev/null &&
	"$IMAGER" store gc --json | jq -e ".removed_chunks == 0 and .kept_chunks == $n" &&
	"$IMAGER" verify golden "$(cat dst.dev)" >/dev/null
'

test_done
